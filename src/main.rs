use std::process::ExitCode;

use tandem::Config;
use tokio::net::TcpListener;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Read by jemalloc at start-up: a C string pointer (see `tandem::memory`).
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: Option<&'static std::ffi::c_char> = {
    let conf = tandem::memory::JEMALLOC_CONF;
    assert!(conf[conf.len() - 1] == 0, "JEMALLOC_CONF ends with NUL");
    // SAFETY: a pointer to the first byte of a static, NUL-terminated
    // byte string; c_char has the size and alignment of u8.
    Some(unsafe { &*(conf.as_ptr() as *const std::ffi::c_char) })
};

fn main() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Store calls run on the blocking pool and mostly wait for the
        // embedded store's one write lock: more threads add stacks, not
        // throughput (soak: 36 threads by minute 4 with tokio's default).
        .max_blocking_threads(tandem::memory::BLOCKING_THREADS)
        .build();
    match runtime {
        Ok(rt) => rt.block_on(serve()),
        Err(e) => {
            eprintln!("tandem: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> ExitCode {
    let config = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tandem: {e}");
            return ExitCode::from(2);
        }
    };
    let _log_guard = match tandem::telemetry::init(&config) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("tandem: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind((config.host, config.port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "tandem: cannot listen on {}:{}: {e}",
                config.host, config.port
            );
            return ExitCode::FAILURE;
        }
    };
    match tandem::run(config, listener, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "fatal");
            eprintln!("tandem: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
