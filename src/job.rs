//! The unit of work that every front end (the RunPod queue, the local replay, the local HTTP
//! API) hands to a handler, and the one way a handler is run.

use std::any::Any;
use std::future::Future;
use std::sync::Arc;

use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;

/// A job as RunPod hands it over.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: String,
    /// Whatever the caller sent as `input`; `Value::Null` when the job carried none, so that the
    /// handler can answer it with an error instead of the job vanishing.
    pub input: Value,
    /// Keys RunPod sends beside `input` (`s3Config`, `webhook`, `batchId`, …).
    pub extra: Map<String, Value>,
}

/// A job object that cannot be answered because there is nobody to answer: it has no id.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MalformedJob {
    #[error("job is not a JSON object")]
    NotAnObject,
    #[error("job has no id (a string or number)")]
    MissingId,
}

impl Job {
    pub fn from_value(value: Value) -> Result<Job, MalformedJob> {
        let Value::Object(mut fields) = value else {
            return Err(MalformedJob::NotAnObject);
        };
        let id = match fields.remove("id") {
            Some(Value::String(id)) if !id.is_empty() => id,
            Some(Value::Number(id)) => id.to_string(),
            _ => return Err(MalformedJob::MissingId),
        };
        let input = fields.remove("input").unwrap_or(Value::Null);
        Ok(Job {
            id,
            input,
            extra: fields,
        })
    }
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Posted as `{"output": value}`.
    Output(Value),
    /// An error meant for the caller, already in the envelope of the API it came through;
    /// posted as `{"error": value}`.
    Error(Value),
    /// The handler broke (an internal error or a panic). Reported the way the RunPod SDK reports
    /// an exception; the details stay in the log.
    Crashed { kind: String, message: String },
}

/// What a handler may emit while it runs, before its final outcome.
#[derive(Debug, Clone, PartialEq)]
pub enum JobEvent {
    /// `{"status":"IN_PROGRESS","output":…}`, shown by the platform while the job runs.
    Progress(Value),
    /// One chunk of a streaming job, readable through `/stream/{id}`.
    Stream(Value),
}

/// The handler's side of a running job. Cheap to clone and usable from any thread, including
/// the engine's.
#[derive(Debug, Clone)]
pub struct JobContext {
    events: mpsc::UnboundedSender<JobEvent>,
}

impl JobContext {
    pub fn progress(&self, update: Value) {
        // The receiver is gone only once the job has been cancelled; nobody is listening then.
        let _ = self.events.send(JobEvent::Progress(update));
    }

    pub fn stream(&self, chunk: Value) {
        let _ = self.events.send(JobEvent::Stream(chunk));
    }
}

#[cfg(test)]
impl JobContext {
    /// A context whose events nobody reads, for calling handlers directly in tests.
    pub(crate) fn unheard() -> Self {
        let (events, _) = mpsc::unbounded_channel();
        Self { events }
    }
}

/// Whether a handler can take work now, for load-balancer health checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Still loading; RunPod's load balancer waits (`/ping` answers 204).
    Initializing,
    Unhealthy,
}

pub trait JobHandler: Send + Sync + 'static {
    fn handle(&self, job: Job, ctx: JobContext) -> impl Future<Output = Outcome> + Send;

    fn readiness(&self) -> Readiness {
        Readiness::Ready
    }
}

/// A job's outcome, and whether it streamed (which changes how RunPod is told it finished).
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub outcome: Outcome,
    pub streamed: bool,
}

/// Runs `job` on a task of its own, so that a panic fails this job only. `on_event` sees every
/// progress and stream event in order, and all of them before this returns. Dropping the
/// returned future cancels the handler.
pub async fn execute<H, F, Fut>(handler: Arc<H>, job: Job, mut on_event: F) -> Finished
where
    H: JobHandler,
    F: FnMut(JobEvent) -> Fut,
    Fut: Future<Output = ()>,
{
    let (events, mut received) = mpsc::unbounded_channel();
    let ctx = JobContext { events };
    let mut task = AbortOnDropHandle::new(tokio::spawn(
        async move { handler.handle(job, ctx).await }.instrument(tracing::Span::current()),
    ));
    let mut streamed = false;
    let joined = loop {
        tokio::select! {
            biased;
            Some(event) = received.recv() => {
                streamed |= matches!(event, JobEvent::Stream(_));
                on_event(event).await;
            }
            joined = &mut task => break joined,
        }
    };
    // A handler may have handed its context to another thread that outlives it; whatever it sent
    // before finishing is still delivered.
    while let Ok(event) = received.try_recv() {
        streamed |= matches!(event, JobEvent::Stream(_));
        on_event(event).await;
    }
    let outcome = match joined {
        Ok(outcome) => outcome,
        Err(error) if error.is_panic() => {
            let payload = panic_message(error.into_panic());
            tracing::error!(panic = %payload, "the handler panicked");
            Outcome::Crashed {
                kind: "panic".into(),
                message: "the handler panicked; the worker log has the details".into(),
            }
        }
        Err(_) => Outcome::Crashed {
            kind: "cancelled".into(),
            message: "the job's task was cancelled".into(),
        },
    };
    Finished { outcome, streamed }
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => payload
            .downcast_ref::<&str>()
            .map_or_else(|| "unknown panic".to_string(), |m| m.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_job_without_input_is_kept_so_it_can_be_answered() {
        let job = Job::from_value(json!({"id": "j1", "webhook": "x"})).unwrap();
        assert_eq!(job.input, Value::Null);
        assert_eq!(job.extra["webhook"], "x");
    }

    #[test]
    fn a_job_needs_an_id() {
        assert_eq!(
            Job::from_value(json!({"input": {}})),
            Err(MalformedJob::MissingId)
        );
        assert_eq!(
            Job::from_value(json!({"id": "", "input": {}})),
            Err(MalformedJob::MissingId)
        );
        assert_eq!(Job::from_value(json!([1])), Err(MalformedJob::NotAnObject));
        assert_eq!(Job::from_value(json!({"id": 7})).unwrap().id, "7");
    }

    struct Scripted;

    impl JobHandler for Scripted {
        async fn handle(&self, job: Job, ctx: JobContext) -> Outcome {
            ctx.progress(json!("half"));
            ctx.stream(json!(1));
            if job.input == "panic" {
                panic!("boom");
            }
            Outcome::Output(job.input)
        }
    }

    #[tokio::test]
    async fn events_arrive_in_order_and_panics_fail_the_job_only() {
        let job = Job::from_value(json!({"id": "a", "input": "fine"})).unwrap();
        let mut seen = Vec::new();
        let finished = execute(Arc::new(Scripted), job, |event| {
            seen.push(event);
            async {}
        })
        .await;
        assert_eq!(finished.outcome, Outcome::Output(json!("fine")));
        assert!(finished.streamed);
        assert_eq!(
            seen,
            vec![
                JobEvent::Progress(json!("half")),
                JobEvent::Stream(json!(1))
            ]
        );

        let job = Job::from_value(json!({"id": "b", "input": "panic"})).unwrap();
        let finished = execute(Arc::new(Scripted), job, |_| async {}).await;
        assert_eq!(
            finished.outcome,
            Outcome::Crashed {
                kind: "panic".into(),
                message: "the handler panicked; the worker log has the details".into()
            }
        );
    }
}
