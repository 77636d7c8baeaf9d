//! SIGTERM and SIGINT: stop taking work, finish what is in flight, exit 0.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Cancels the returned token at the first SIGTERM or SIGINT. Later signals are only logged:
/// the drain they would cut short is what keeps taken jobs from being lost.
pub fn on_signals() -> std::io::Result<CancellationToken> {
    let token = CancellationToken::new();
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let cancel = token.clone();
    tokio::spawn(async move {
        loop {
            let name = tokio::select! {
                Some(()) = terminate.recv() => "SIGTERM",
                Some(()) = interrupt.recv() => "SIGINT",
                else => return,
            };
            if cancel.is_cancelled() {
                tracing::warn!("{name} received again; still finishing the jobs in flight");
            } else {
                tracing::info!("{name} received; finishing the jobs in flight, then exiting");
                cancel.cancel();
            }
        }
    });
    Ok(token)
}
