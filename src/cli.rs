//! The command line: the SDK's flags (`--test_input`, `--rp_serve_api`, …) and `serve`.

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "chatterbox-worker", version, about)]
pub struct Cli {
    /// Run one job and exit: inline JSON (starting with `{`) or a file holding it. Without it,
    /// and outside RunPod, ./test_input.json is run.
    #[arg(
        long = "test-input",
        visible_alias = "test_input",
        value_name = "JSON_OR_FILE"
    )]
    pub test_input: Option<String>,

    /// Log level in the SDK's words (ERROR, WARN, INFO, DEBUG, TRACE); RUST_LOG wins.
    #[arg(long = "rp_log_level", value_name = "LEVEL")]
    pub rp_log_level: Option<String>,

    /// The SDK's spelling of `serve`.
    #[arg(long = "rp_serve_api", hide = true)]
    pub rp_serve_api: bool,

    /// The SDK's spelling of `serve --host`.
    #[arg(long = "rp_api_host", hide = true)]
    pub rp_api_host: Option<String>,

    /// The SDK's spelling of `serve --port`.
    #[arg(long = "rp_api_port", hide = true)]
    pub rp_api_port: Option<u16>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the local HTTP API (/run, /runsync, /status, /stream, /cancel, /health, /ping).
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: $HOST, else 0.0.0.0 when $PORT is set, else 127.0.0.1].
    #[arg(long)]
    pub host: Option<String>,
    /// Port to listen on [default: $PORT, else 8000].
    #[arg(long)]
    pub port: Option<u16>,
    /// A second port answering only /ping [default: $PORT_HEALTH].
    #[arg(long)]
    pub health_port: Option<u16>,
}

/// Where `serve` listens, after flags and RunPod's load-balancer variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeAddress {
    pub host: String,
    pub port: u16,
    pub health_port: Option<u16>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Mode {
    Serve(ServeAddress),
    /// Run one job from the test input and exit.
    Local(Option<String>),
    /// RunPod's job queue.
    Production,
}

impl Cli {
    /// The SDK's rule: production iff `RUNPOD_WEBHOOK_GET_JOB` is set and no test input is
    /// given.
    pub fn mode(&self, var: impl Fn(&str) -> Option<String>) -> Result<Mode, String> {
        let serve = match &self.command {
            Some(Command::Serve(args)) => Some(args),
            None if self.rp_serve_api => Some(&DEFAULT_SERVE_ARGS),
            None => None,
        };
        if let Some(args) = serve {
            let port = |v: Option<String>, name: &str| -> Result<Option<u16>, String> {
                v.map(|p| {
                    p.trim()
                        .parse()
                        .map_err(|_| format!("{name} must be a port number, not {p:?}"))
                })
                .transpose()
            };
            let env_port = port(var("PORT"), "PORT")?;
            let host = args
                .host
                .clone()
                .or_else(|| self.rp_api_host.clone())
                .or_else(|| var("HOST"))
                .unwrap_or_else(|| {
                    if env_port.is_some() {
                        "0.0.0.0"
                    } else {
                        "127.0.0.1"
                    }
                    .into()
                });
            return Ok(Mode::Serve(ServeAddress {
                host,
                port: args.port.or(self.rp_api_port).or(env_port).unwrap_or(8000),
                health_port: args
                    .health_port
                    .or(port(var("PORT_HEALTH"), "PORT_HEALTH")?),
            }));
        }
        let queue = var(crate::runpod::env::GET_JOB).is_some_and(|v| !v.trim().is_empty());
        Ok(if queue && self.test_input.is_none() {
            Mode::Production
        } else {
            Mode::Local(self.test_input.clone())
        })
    }
}

static DEFAULT_SERVE_ARGS: ServeArgs = ServeArgs {
    host: None,
    port: None,
    health_port: None,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(args: &[&str], env: &[(&str, &str)]) -> Mode {
        let cli =
            Cli::try_parse_from(std::iter::once("chatterbox-worker").chain(args.iter().copied()))
                .unwrap();
        cli.mode(|name| {
            env.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
        .unwrap()
    }

    #[test]
    fn production_needs_the_queue_and_no_test_input() {
        let queue = [("RUNPOD_WEBHOOK_GET_JOB", "http://h/job-take/$ID")];
        assert_eq!(mode(&[], &queue), Mode::Production);
        assert_eq!(mode(&[], &[]), Mode::Local(None));
        assert_eq!(
            mode(&["--test_input", "{}"], &queue),
            Mode::Local(Some("{}".into()))
        );
    }

    #[test]
    fn serve_listens_where_runpod_load_balancers_expect() {
        let local = mode(&["serve"], &[]);
        assert_eq!(
            local,
            Mode::Serve(ServeAddress {
                host: "127.0.0.1".into(),
                port: 8000,
                health_port: None
            })
        );
        let lb = mode(&["serve"], &[("PORT", "80"), ("PORT_HEALTH", "81")]);
        assert_eq!(
            lb,
            Mode::Serve(ServeAddress {
                host: "0.0.0.0".into(),
                port: 80,
                health_port: Some(81)
            })
        );
        let sdk = mode(&["--rp_serve_api", "--rp_api_port", "9000"], &[]);
        assert!(matches!(sdk, Mode::Serve(ServeAddress { port: 9000, .. })));
    }
}
