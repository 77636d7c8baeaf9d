use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;

use chatterbox_worker::cli::{Cli, Mode, ServeAddress};
use chatterbox_worker::config::Settings;
use chatterbox_worker::engine::Engine;
use chatterbox_worker::handlers::Handlers;
use chatterbox_worker::logging::{self, Sink};
use chatterbox_worker::runpod::client::PlatformClient;
use chatterbox_worker::runpod::env::PlatformEnv;
use chatterbox_worker::runpod::worker::{self, WorkerOptions};
use chatterbox_worker::runpod::{Timings, local};
use chatterbox_worker::{serve, shutdown};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mode = match cli.mode(|name| std::env::var(name).ok()) {
        Ok(mode) => mode,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let sink = match mode {
        Mode::Local(_) => Sink::Stderr,
        Mode::Serve(_) | Mode::Production => Sink::Stdout,
    };
    logging::init(sink, cli.rp_log_level.as_deref());
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(mode)) {
        Ok(code) => code,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(mode: Mode) -> anyhow::Result<ExitCode> {
    let settings = Arc::new(Settings::from_env().context("invalid configuration")?);
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        model = %settings.engine.model,
        volume = %settings.volume.root().display(),
        "--- Starting Serverless Worker ---"
    );
    let engine = Engine::new(settings.engine.clone());
    if settings.preload {
        engine.preload();
    }
    let handlers = Arc::new(Handlers::new(settings.clone(), engine));
    match mode {
        Mode::Local(test_input) => {
            let (body, succeeded) = local::run(handlers, test_input.as_deref()).await;
            println!("{}", serde_json::to_string_pretty(&body)?);
            Ok(if succeeded {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Mode::Production => {
            let env = PlatformEnv::from_lookup(|name| std::env::var(name).ok())
                .context("invalid RunPod environment")?
                .context("RUNPOD_WEBHOOK_GET_JOB is not set")?;
            tracing::info!(worker_id = %env.worker_id, "taking jobs from RunPod");
            let client = PlatformClient::new(env, Timings::default())?;
            let options = WorkerOptions {
                concurrency: settings.concurrency,
                refresh_worker: settings.refresh_worker,
            };
            let shutdown = shutdown::on_signals().context("cannot watch for SIGTERM")?;
            worker::run(client, handlers, options, shutdown).await;
            tracing::info!("all jobs posted; exiting");
            Ok(ExitCode::SUCCESS)
        }
        Mode::Serve(address) => {
            serve_api(handlers, &settings, address).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn serve_api(
    handlers: Arc<Handlers>,
    settings: &Settings,
    address: ServeAddress,
) -> anyhow::Result<()> {
    let shutdown = shutdown::on_signals().context("cannot watch for SIGTERM")?;
    let bind = |port: u16| {
        let host = address.host.clone();
        async move {
            TcpListener::bind((host.as_str(), port))
                .await
                .with_context(|| format!("cannot listen on {host}:{port}"))
        }
    };
    let listener = bind(address.port).await?;
    tracing::info!(address = %listener.local_addr()?, "serving the local API");
    if let Some(port) = address.health_port.filter(|p| *p != address.port) {
        let health = bind(port).await?;
        let app = serve::ping_app(handlers.clone());
        tokio::spawn(serve::serve(health, app, shutdown.clone()));
    }
    let app = serve::app(handlers, settings.concurrency, settings.api.clone());
    serve::serve(listener, app, shutdown).await?;
    Ok(())
}
