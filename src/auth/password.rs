//! bcrypt, always off the reactor, on a small pool of low-priority threads.
//!
//! A bcrypt at cost 12 is ~200 ms of CPU. Run on tokio's blocking pool, a
//! burst of logins becomes dozens of threads at normal priority that take
//! the cores from the reactor, and every chat message and call signal waits
//! behind them. Here hashes run on one thread per core at a lower
//! scheduling priority (nice +10 on Linux), so under a login storm the
//! reactor still gets the CPU first and logins take longer instead; at most
//! QUEUE_MAX hashes wait, beyond that a login is refused with 503.

use std::sync::{
    Arc, Mutex, OnceLock,
    mpsc::{Receiver, SyncSender, TrySendError, sync_channel},
};

use crate::error::AppError;

/// Hashes waiting for a thread before new ones are refused.
const QUEUE_MAX: usize = 256;
/// Niceness of the hashing threads (0 is normal, 19 the lowest).
const NICE: i32 = 10;

type Job = Box<dyn FnOnce() + Send>;

struct Pool {
    jobs: SyncSender<Job>,
}

static POOL: OnceLock<Pool> = OnceLock::new();

/// Hashes queued and not yet taken by a thread.
static QUEUED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How many password hashes wait for a hashing thread.
pub fn queued() -> usize {
    QUEUED.load(std::sync::atomic::Ordering::Relaxed)
}

impl Pool {
    fn get() -> &'static Pool {
        POOL.get_or_init(|| {
            let (jobs, rx) = sync_channel::<Job>(QUEUE_MAX);
            let rx = Arc::new(Mutex::new(rx));
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            for i in 0..threads {
                let rx = rx.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("bcrypt-{i}"))
                    .spawn(move || worker(&rx));
                if let Err(e) = spawned {
                    tracing::error!(error = %e, "could not start a password hashing thread");
                }
            }
            Pool { jobs }
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AppError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        // Counted before it is sent, so a thread taking it at once cannot
        // count below zero.
        QUEUED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let sent = self.jobs.try_send(job);
        if sent.is_err() {
            QUEUED.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
        match sent {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(AppError::Unavailable(
                    "too many logins at once, try again in a moment".into(),
                ));
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(AppError::Internal(
                    "password hashing threads are gone".into(),
                ));
            }
        }
        rx.await
            .map_err(|_| AppError::Internal("password hashing failed".into()))
    }
}

fn worker(rx: &Mutex<Receiver<Job>>) {
    lower_priority();
    loop {
        // The lock is held only while waiting for the next job.
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => {
                QUEUED.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                job()
            }
            Err(_) => return,
        }
    }
}

#[cfg(target_os = "linux")]
fn lower_priority() {
    // SAFETY: plain syscalls on the calling thread's own id.
    let rc = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, NICE)
    };
    if rc != 0 {
        tracing::debug!("could not lower the hashing thread's priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

/// A hash to verify against when the account does not exist, so that an
/// unknown email costs the same time as a wrong password.
static DUMMY_HASH: OnceLock<String> = OnceLock::new();

pub async fn hash(password: String, cost: u32) -> Result<String, AppError> {
    Pool::get()
        .run(move || bcrypt::hash(password, cost))
        .await?
        .map_err(|e| AppError::Internal(format!("bcrypt: {e}")))
}

/// Verifies `password` against `hash`, or against a dummy hash of the same
/// cost when there is no account.
pub async fn verify(password: String, hash: Option<String>, cost: u32) -> Result<bool, AppError> {
    Pool::get()
        .run(move || {
            let (hash, real) = match hash {
                Some(h) => (h, true),
                None => (
                    DUMMY_HASH
                        .get_or_init(|| {
                            bcrypt::hash("not-a-real-password-1", cost).unwrap_or_default()
                        })
                        .clone(),
                    false,
                ),
            };
            bcrypt::verify(password, &hash).unwrap_or(false) && real
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_and_verifies_on_the_pool() {
        let h = hash("correct horse 1".into(), 4).await.unwrap();
        assert!(
            verify("correct horse 1".into(), Some(h.clone()), 4)
                .await
                .unwrap()
        );
        assert!(!verify("wrong horse 1".into(), Some(h), 4).await.unwrap());
        assert!(!verify("correct horse 1".into(), None, 4).await.unwrap());
    }
}
