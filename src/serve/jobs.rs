//! The local API's job table: status, results and stream chunks, kept for as long as RunPod
//! keeps `/run` results.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::sync::watch;
use tokio::task::AbortHandle;

use crate::job::JobEvent;

/// RunPod keeps `/run` results for 30 minutes.
const RETENTION: Duration = Duration::from_secs(30 * 60);
/// The `workerId` the local API reports.
const WORKER_ID: &str = "local";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    InQueue,
    InProgress,
    Completed,
    Failed,
    Cancelled,
}

impl Status {
    fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

struct Record {
    status: Status,
    submitted: Instant,
    started: Option<Instant>,
    ended: Option<Instant>,
    /// The latest progress update, shown as the output while the job runs.
    progress: Option<Value>,
    /// The final `{"output"}` / `{"error"}` body.
    result: Map<String, Value>,
    /// Stream chunks not yet read through `/stream`.
    unread: Vec<Value>,
    task: Option<AbortHandle>,
    finished: watch::Sender<bool>,
}

#[derive(Clone, Default)]
pub struct JobStore {
    records: Arc<Mutex<HashMap<String, Record>>>,
}

impl JobStore {
    fn records(&self) -> MutexGuard<'_, HashMap<String, Record>> {
        // Every update leaves a record whole, so a poisoned lock is still consistent.
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn submit(&self, id: &str) {
        let mut records = self.records();
        let now = Instant::now();
        records.retain(|_, r| r.ended.is_none_or(|ended| now - ended < RETENTION));
        records.insert(
            id.to_string(),
            Record {
                status: Status::InQueue,
                submitted: now,
                started: None,
                ended: None,
                progress: None,
                result: Map::new(),
                unread: Vec::new(),
                task: None,
                finished: watch::Sender::new(false),
            },
        );
    }

    pub fn attach(&self, id: &str, task: AbortHandle) {
        if let Some(record) = self.records().get_mut(id) {
            record.task = Some(task);
        }
    }

    pub fn start(&self, id: &str) {
        if let Some(record) = self.records().get_mut(id) {
            record.status = Status::InProgress;
            record.started = Some(Instant::now());
        }
    }

    pub fn event(&self, id: &str, event: JobEvent) {
        if let Some(record) = self.records().get_mut(id) {
            match event {
                JobEvent::Progress(update) => record.progress = Some(update),
                JobEvent::Stream(chunk) => record.unread.push(chunk),
            }
        }
    }

    /// Records the final body; a job cancelled meanwhile stays cancelled.
    pub fn finish(&self, id: &str, body: Value) {
        let mut records = self.records();
        let Some(record) = records.get_mut(id) else {
            return;
        };
        if record.status.is_final() {
            return;
        }
        let Value::Object(result) = body else { return };
        record.status = if result.contains_key("error") {
            Status::Failed
        } else {
            Status::Completed
        };
        record.result = result;
        record.ended = Some(Instant::now());
        record.finished.send_replace(true);
    }

    pub fn cancel(&self, id: &str) -> Option<Value> {
        let mut records = self.records();
        let record = records.get_mut(id)?;
        if !record.status.is_final() {
            if let Some(task) = &record.task {
                task.abort();
            }
            record.status = Status::Cancelled;
            record.ended = Some(Instant::now());
            record.finished.send_replace(true);
        }
        Some(json!({"id": id, "status": record.status}))
    }

    /// The status object of RunPod's `/status`.
    pub fn status(&self, id: &str) -> Option<Value> {
        let records = self.records();
        let record = records.get(id)?;
        Some(status_body(id, record))
    }

    /// RunPod's `/stream`: the chunks not read before, and the status.
    pub fn read_stream(&self, id: &str) -> Option<Value> {
        let mut records = self.records();
        let record = records.get_mut(id)?;
        let stream: Vec<Value> = record
            .unread
            .drain(..)
            .map(|chunk| json!({"output": chunk}))
            .collect();
        Some(json!({"id": id, "status": record.status, "stream": stream}))
    }

    /// Waits until the job ends or `wait` passes; returns at once for an unknown id.
    pub async fn wait(&self, id: &str, wait: Duration) {
        let Some(mut finished) = self.records().get(id).map(|r| r.finished.subscribe()) else {
            return;
        };
        let _ = tokio::time::timeout(wait, finished.wait_for(|done| *done)).await;
    }

    /// RunPod's `/health` counts.
    pub fn health(&self) -> Value {
        let records = self.records();
        let count = |status: Status| records.values().filter(|r| r.status == status).count();
        let running = count(Status::InProgress);
        json!({
            "jobs": {
                "completed": count(Status::Completed),
                "failed": count(Status::Failed),
                "inProgress": running,
                "inQueue": count(Status::InQueue),
                "retried": 0,
            },
            "workers": {"idle": usize::from(running == 0), "running": usize::from(running > 0)},
        })
    }
}

fn status_body(id: &str, record: &Record) -> Value {
    let now = Instant::now();
    let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let mut body = json!({
        "id": id,
        "status": record.status,
        "delayTime": millis(record.started.unwrap_or(now) - record.submitted),
        "workerId": WORKER_ID,
    });
    if let Some(started) = record.started {
        body["executionTime"] = json!(millis(record.ended.unwrap_or(now) - started));
    }
    for (key, value) in &record.result {
        body[key] = value.clone();
    }
    if let (Status::InProgress, Some(progress)) = (record.status, &record.progress) {
        body["output"] = progress.clone();
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_moves_from_queue_to_a_final_status() {
        let store = JobStore::default();
        store.submit("a");
        assert_eq!(store.status("a").unwrap()["status"], "IN_QUEUE");
        store.start("a");
        store.event("a", JobEvent::Progress(json!({"percent": 50})));
        let running = store.status("a").unwrap();
        assert_eq!(running["status"], "IN_PROGRESS");
        assert_eq!(running["output"], json!({"percent": 50}));
        store.finish("a", json!({"error": "bad"}));
        let failed = store.status("a").unwrap();
        assert_eq!(failed["status"], "FAILED");
        assert_eq!(failed["error"], "bad");
        assert!(failed["executionTime"].is_u64());
        assert!(store.status("b").is_none());
    }

    #[test]
    fn stream_chunks_are_read_once_and_cancel_is_final() {
        let store = JobStore::default();
        store.submit("s");
        store.start("s");
        store.event("s", JobEvent::Stream(json!("one")));
        assert_eq!(
            store.read_stream("s").unwrap()["stream"],
            json!([{"output": "one"}])
        );
        assert_eq!(store.read_stream("s").unwrap()["stream"], json!([]));
        assert_eq!(store.cancel("s").unwrap()["status"], "CANCELLED");
        store.finish("s", json!({"output": 1}));
        assert_eq!(store.status("s").unwrap()["status"], "CANCELLED");
    }
}
