//! Logs through `tracing`. With `RUNPOD_ENDPOINT_ID` set they are the SDK's JSON lines,
//! `{"requestId", "message", "level"}`, which RunPod's console groups by request.

use std::fmt::Write as _;

use serde_json::json;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

pub const ENDPOINT_ID_VAR: &str = "RUNPOD_ENDPOINT_ID";
/// The SDK's level variable, used when `RUST_LOG` is not set.
pub const RUNPOD_LEVEL_VAR: &str = "RUNPOD_LOG_LEVEL";
/// The SDK cuts longer messages in the middle.
const MAX_MESSAGE_CHARS: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    Stdout,
    /// Keeps stdout free for the result in local mode.
    Stderr,
}

/// Installs the global subscriber. `level` is an SDK level name (`--rp_log_level`).
pub fn init(sink: Sink, level: Option<&str>) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        let level = level
            .map(str::to_string)
            .or_else(|| std::env::var(RUNPOD_LEVEL_VAR).ok())
            .map(|name| sdk_level(&name))
            .unwrap_or("info");
        EnvFilter::new(level)
    });
    let json = std::env::var(ENDPOINT_ID_VAR).is_ok_and(|v| !v.is_empty());
    let writer = || match sink {
        Sink::Stdout => BoxMakeWriter::new(std::io::stdout),
        Sink::Stderr => BoxMakeWriter::new(std::io::stderr),
    };
    let fmt = if json {
        tracing_subscriber::fmt::layer()
            .event_format(RunPodJson)
            .with_writer(writer())
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(writer())
            .boxed()
    };
    // A second init (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(JobIdLayer)
        .with(filter)
        .try_init();
}

fn sdk_level(name: &str) -> &'static str {
    match name.trim().to_ascii_uppercase().as_str() {
        "TRACE" | "NOTSET" => "trace",
        "DEBUG" => "debug",
        "WARN" | "WARNING" => "warn",
        "ERROR" => "error",
        _ => "info",
    }
}

/// The job id a span was opened with, kept for the JSON formatter.
struct JobId(String);

struct JobIdLayer;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for JobIdLayer {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let (Some(job_id), Some(span)) = (fields.job_id, ctx.span(id)) {
            span.extensions_mut().insert(JobId(job_id));
        }
    }
}

/// An event's message, its job id if it names one, and its other fields as `key=value`.
#[derive(Default)]
struct Fields {
    message: String,
    job_id: Option<String>,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message.push_str(value),
            "job_id" => self.job_id = Some(value.to_string()),
            name => {
                let _ = write!(self.rest, " {name}={value}");
            }
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => {
                let _ = write!(self.message, "{value:?}");
            }
            "job_id" => self.job_id = Some(format!("{value:?}")),
            name => {
                let _ = write!(self.rest, " {name}={value:?}");
            }
        }
    }
}

struct RunPodJson;

impl<S, N> FormatEvent<S, N> for RunPodJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let request_id = fields.job_id.clone().or_else(|| {
            ctx.event_scope()?
                .find_map(|span| span.extensions().get::<JobId>().map(|id| id.0.clone()))
        });
        let message = truncate_middle(&format!("{}{}", fields.message, fields.rest));
        let line = json!({
            "requestId": request_id,
            "message": message,
            "level": event.metadata().level().to_string(),
        });
        writeln!(writer, "{line}")
    }
}

fn truncate_middle(message: &str) -> String {
    let chars = message.chars().count();
    if chars <= MAX_MESSAGE_CHARS {
        return message.to_string();
    }
    let keep = MAX_MESSAGE_CHARS / 2;
    let head: String = message.chars().take(keep).collect();
    let tail: String = message.chars().skip(chars - keep).collect();
    format!(
        "{head}...TRUNCATED {} CHARACTERS...{tail}",
        chars - 2 * keep
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_in_the_middle() {
        let long = "a".repeat(5000);
        let cut = truncate_middle(&long);
        assert!(cut.contains("...TRUNCATED 904 CHARACTERS..."));
        assert_eq!(truncate_middle("short"), "short");
    }

    #[test]
    fn sdk_level_names_map_to_tracing_levels() {
        assert_eq!(sdk_level("WARN"), "warn");
        assert_eq!(sdk_level("notset"), "trace");
        assert_eq!(sdk_level("whatever"), "info");
    }
}
