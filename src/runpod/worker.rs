//! The production loop: take jobs while slots are free, run each on its own task, post every
//! result, ping the heartbeat, honour job-stop, and drain on shutdown.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::client::{PlatformClient, PlatformError};
use super::result::Reporter;
use crate::job::{self, Job, JobEvent, JobHandler};

#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Jobs run at once (`MAX_CONCURRENCY`).
    pub concurrency: usize,
    /// Post every result with `stopPod` and leave after the first job, as the SDK's
    /// `refresh_worker` does.
    pub refresh_worker: bool,
}

/// The jobs taken and not yet finished: their ids go into every heartbeat, and job-stop aborts
/// them by id.
#[derive(Clone)]
struct InFlight {
    /// The handle is attached right after the job's task is spawned.
    jobs: Arc<Mutex<HashMap<String, Option<AbortHandle>>>>,
    count: watch::Sender<usize>,
}

impl InFlight {
    fn new() -> Self {
        Self {
            jobs: Arc::default(),
            count: watch::Sender::new(0),
        }
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<AbortHandle>>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.jobs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn len(&self) -> usize {
        self.jobs().len()
    }

    fn contains(&self, id: &str) -> bool {
        self.jobs().contains_key(id)
    }

    fn ids(&self) -> Vec<String> {
        self.jobs().keys().cloned().collect()
    }

    /// Registers a job before its task exists, so that a task finishing at once cannot leave
    /// a stale entry behind.
    fn enter(&self, id: &str) -> InFlightGuard {
        let mut jobs = self.jobs();
        jobs.insert(id.to_string(), None);
        self.count.send_replace(jobs.len());
        InFlightGuard {
            in_flight: self.clone(),
            id: id.to_string(),
        }
    }

    fn attach(&self, id: &str, task: AbortHandle) {
        if let Some(slot) = self.jobs().get_mut(id) {
            *slot = Some(task);
        }
    }

    fn remove(&self, id: &str) {
        let mut jobs = self.jobs();
        jobs.remove(id);
        self.count.send_replace(jobs.len());
    }

    fn cancel(&self, id: &str) -> bool {
        match self.jobs().get(id) {
            Some(Some(task)) => {
                task.abort();
                true
            }
            _ => false,
        }
    }
}

/// Removes a job from [`InFlight`] however its task ends: finished, failed or aborted.
struct InFlightGuard {
    in_flight: InFlight,
    id: String,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.in_flight.remove(&self.id);
    }
}

/// Runs until `shutdown` is cancelled and every job taken has been posted.
pub async fn run<H: JobHandler>(
    client: PlatformClient,
    handler: Arc<H>,
    options: WorkerOptions,
    shutdown: CancellationToken,
) {
    let client = Arc::new(client);
    let in_flight = InFlight::new();
    let runner = Arc::new(Runner {
        reporter: Reporter {
            hostname: client.env().hostname.clone(),
            worker_id: client.env().worker_id.clone(),
        },
        client: client.clone(),
        handler,
        refresh_worker: options.refresh_worker,
        shutdown: shutdown.clone(),
    });
    let background = CancellationToken::new();
    let mut helpers = JoinSet::new();
    if let Some(template) = client.env().ping.clone() {
        helpers.spawn(heartbeat(
            client.clone(),
            template,
            in_flight.clone(),
            background.clone(),
        ));
    }
    match client.env().job_stop() {
        Some(template) => {
            helpers.spawn(watch_stops(
                client.clone(),
                template,
                in_flight.clone(),
                background.clone(),
            ));
        }
        None => tracing::warn!("the job-take URL has no /job-take/; job-stop is disabled"),
    }

    let mut jobs = JoinSet::new();
    let concurrency = options.concurrency.max(1);
    let mut count = in_flight.count.subscribe();
    while !shutdown.is_cancelled() {
        while jobs.try_join_next().is_some() {}
        let busy = in_flight.len();
        if busy >= concurrency {
            tokio::select! {
                _ = count.wait_for(|n| *n < concurrency) => continue,
                _ = shutdown.cancelled() => break,
            }
        }
        // A take already sent is seen through even after shutdown: the platform may have handed
        // us jobs, and every job taken gets its post.
        match client.take(concurrency - busy, busy > 0).await {
            Ok(taken) => {
                for raw in taken {
                    let Some(job) = accept(raw, &in_flight) else {
                        continue;
                    };
                    let id = job.id.clone();
                    let guard = in_flight.enter(&id);
                    let task = jobs.spawn(
                        runner
                            .clone()
                            .run(job, guard)
                            .instrument(tracing::info_span!("job", job_id = %id)),
                    );
                    in_flight.attach(&id, task);
                }
            }
            Err(PlatformError::Transport(error)) if error.is_timeout() => {
                tracing::debug!("job-take long poll timed out");
            }
            Err(PlatformError::TooManyRequests) => {
                tracing::debug!("job-take answered 429; backing off");
                pause(client.timings().too_many_requests_pause, &shutdown).await;
            }
            Err(error) => {
                tracing::error!(%error, "failed to take a job");
                pause(client.timings().error_pause, &shutdown).await;
            }
        }
    }
    tracing::info!(
        jobs = in_flight.len(),
        "no longer taking jobs; finishing those in flight"
    );
    while jobs.join_next().await.is_some() {}
    background.cancel();
    while helpers.join_next().await.is_some() {}
}

/// Turns a raw job object into a job we can run, or logs why it cannot be answered at all.
fn accept(raw: Value, in_flight: &InFlight) -> Option<Job> {
    match Job::from_value(raw) {
        Ok(job) if in_flight.contains(&job.id) => {
            tracing::warn!(job_id = %job.id, "job-take returned a job already in flight; ignored");
            None
        }
        Ok(job) => Some(job),
        Err(error) => {
            tracing::error!(%error, "job-take returned a job that cannot be answered");
            None
        }
    }
}

async fn pause(duration: std::time::Duration, shutdown: &CancellationToken) {
    tokio::select! {
        _ = tokio::time::sleep(duration) => {}
        _ = shutdown.cancelled() => {}
    }
}

/// What every job task needs.
struct Runner<H> {
    client: Arc<PlatformClient>,
    handler: Arc<H>,
    reporter: Reporter,
    refresh_worker: bool,
    shutdown: CancellationToken,
}

impl<H: JobHandler> Runner<H> {
    async fn run(self: Arc<Self>, job: Job, _in_flight: InFlightGuard) {
        let id = job.id.clone();
        tracing::info!("job started");
        let finished = job::execute(self.handler.clone(), job, |event| {
            let client = self.client.clone();
            let id = id.clone();
            async move {
                let posted = match event {
                    JobEvent::Progress(update) => client.progress(&id, update).await,
                    JobEvent::Stream(chunk) => client.stream_chunk(&id, chunk).await,
                };
                if let Err(error) = posted {
                    tracing::error!(%error, "failed to post a job update");
                }
            }
        })
        .await;
        let body = self.reporter.done_body(&id, &finished, self.refresh_worker);
        match self.client.job_done(&id, &body, finished.streamed).await {
            Ok(()) => tracing::info!("job finished and posted"),
            Err(error) => tracing::error!(%error, "failed to post the job's result"),
        }
        if self.refresh_worker {
            self.shutdown.cancel();
        }
    }
}

async fn heartbeat(
    client: Arc<PlatformClient>,
    template: String,
    in_flight: InFlight,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(client.env().ping_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let ids = in_flight.ids();
        tokio::select! {
            _ = stop.cancelled() => return,
            pinged = client.ping(&template, &ids) => {
                if let Err(error) = pinged {
                    tracing::warn!(%error, "heartbeat failed");
                }
            }
        }
    }
}

async fn watch_stops(
    client: Arc<PlatformClient>,
    template: String,
    in_flight: InFlight,
    stop: CancellationToken,
) {
    loop {
        let answer = tokio::select! {
            _ = stop.cancelled() => return,
            answer = client.jobs_to_stop(&template) => answer,
        };
        let wait = match answer {
            Ok(ids) if !ids.is_empty() => {
                for id in ids {
                    if in_flight.cancel(&id) {
                        tracing::info!(job_id = %id, "job cancelled by the platform");
                    }
                }
                continue;
            }
            Ok(_) => client.timings().error_pause,
            Err(PlatformError::TooManyRequests) => client.timings().too_many_requests_pause,
            Err(error) => {
                tracing::debug!(%error, "job-stop poll failed");
                client.timings().error_pause
            }
        };
        pause(wait, &stop).await;
    }
}
