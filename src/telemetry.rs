//! Logs to stdout and to LOG_DIR/tandem.log.YYYY-MM-DD (rotated daily).

use std::io::IsTerminal;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::{EnvFilter, fmt, layer::SubscriberExt, util::SubscriberInitExt};

use crate::Config;

/// Installs the global subscriber; keep the guard alive to flush the file.
pub fn init(config: &Config) -> Result<WorkerGuard, String> {
    std::fs::create_dir_all(&config.log_dir)
        .map_err(|e| format!("LOG_DIR {}: {e}", config.log_dir.display()))?;
    let file = tracing_appender::rolling::daily(&config.log_dir, "tandem.log");
    let (file_writer, guard) = tracing_appender::non_blocking(file);
    let filter = EnvFilter::try_new(&config.log_level).map_err(|e| format!("LOG_LEVEL: {e}"))?;
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt::layer().with_ansi(std::io::stdout().is_terminal()))
        .with(fmt::layer().with_ansi(false).with_writer(file_writer))
        .try_init()
        .map_err(|e| format!("tracing: {e}"))?;
    Ok(guard)
}
