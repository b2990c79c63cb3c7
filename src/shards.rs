//! Connection shards: HTTP and Socket.IO connections are served on a few
//! threads of their own, each running a single-threaded tokio runtime, as
//! Node runs each process's connections on one event loop.
//!
//! Why not tokio's multi-threaded scheduler for them: under a closed loop
//! of thousands of chat users its bounded per-worker queues overflow into a
//! global queue that is read less often, its LIFO slot lets a pair of
//! sessions that wake each other cut in line, and idle workers are woken to
//! steal work that is not there. The tail latency of a relayed message was
//! 4× its median and above Node's (BENCHMARKS.md, eighteenth session). A
//! current-thread runtime takes ready tasks first in, first out.
//!
//! A connection starts on the next shard in turn and keeps there its HTTP
//! connection, its long-polling session's task and what its handlers
//! spawn. Sessions on different shards reach each other through the same
//! queues and wake-ups as on one (`sio::Session::push`), which work across
//! runtimes, but each such wake-up costs the other thread a system call and
//! waits in its remote queue. So two people chatting are put on one shard
//! by their messages (`sio::Io::colocate`): between two turns of its loop a
//! WebSocket task's TCP socket is taken off one shard's reactor and put on
//! the other's, and the task goes on there with the same WebSocket state.
//! Blocking work goes to the main runtime's one pool ([`spawn_blocking`]).
//! Everything else (background tasks, the TURN relay, the SFU) stays on
//! the main runtime.

use std::{
    cell::{Cell, RefCell},
    future::Future,
    io,
    sync::atomic::{AtomicUsize, Ordering},
};

use tokio::{runtime::Handle, sync::oneshot, task::JoinHandle};

/// Threads of a shard's own blocking pool (see [`spawn_blocking`]).
pub const OWN_BLOCKING_THREADS: usize = 2;

/// Every how many turns a shard takes a task woken from another thread
/// first, when there is one.
const REMOTE_EVERY: u32 = 2;

thread_local! {
    /// The shard this thread runs, on a shard's thread.
    static CURRENT: Cell<Option<usize>> = const { Cell::new(None) };
    /// On a shard's thread: the runtime that started the shards.
    static MAIN: RefCell<Option<Handle>> = const { RefCell::new(None) };
}

/// Runs blocking work on the blocking pool of the runtime that started the
/// shards when called on a shard, else on the current runtime's: one pool
/// of `memory::BLOCKING_THREADS` for all shards, as before there were
/// shards. Each shard's own pool (for `tokio::fs`) is kept small; chunks
/// written by threads of several pools left more memory behind (upload
/// RSS +13–15 MB against +9–12; BENCHMARKS.md, eighteenth session).
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    match MAIN.with(|m| m.borrow().clone()) {
        Some(main) => main.spawn_blocking(f),
        None => tokio::task::spawn_blocking(f),
    }
}

/// The shard the calling thread runs (None off the shards).
pub fn current() -> Option<usize> {
    CURRENT.with(Cell::get)
}

/// The shards' runtimes; dropping it stops them (their tasks are dropped).
pub struct Shards {
    handles: Vec<Handle>,
    next: AtomicUsize,
    _stop: Vec<oneshot::Sender<()>>,
}

impl Shards {
    /// Starts `n` shards (at least one), named `tandem-conn-K`, each with
    /// at most `blocking_threads` threads in its blocking pool.
    pub fn start(n: usize, blocking_threads: usize) -> io::Result<Shards> {
        let n = n.max(1);
        let main = Handle::try_current().ok();
        let mut handles = Vec::with_capacity(n);
        let mut stops = Vec::with_capacity(n);
        for k in 0..n {
            let rt = tokio::runtime::Builder::new_current_thread()
                // Tasks woken from another shard (a partner's message)
                // wait in the runtime's remote queue; tokio reads it once
                // in 31 turns by default, which starved them behind this
                // shard's own under load (1,000 pairs: p99 338 ms against
                // 79 with every other turn).
                .global_queue_interval(REMOTE_EVERY)
                .enable_all()
                .max_blocking_threads(blocking_threads.max(1))
                .thread_name(format!("tandem-conn-{k}-blocking"))
                .build()?;
            let (stop, stopped) = oneshot::channel::<()>();
            handles.push(rt.handle().clone());
            stops.push(stop);
            let main = main.clone();
            std::thread::Builder::new()
                .name(format!("tandem-conn-{k}"))
                .spawn(move || {
                    CURRENT.with(|c| c.set(Some(k)));
                    MAIN.with(|m| *m.borrow_mut() = main);
                    // Drives the shard's tasks until the `Shards` is
                    // dropped; dropping the runtime then drops them.
                    rt.block_on(async {
                        let _ = stopped.await;
                    });
                })?;
        }
        Ok(Shards {
            handles,
            next: AtomicUsize::new(0),
            _stop: stops,
        })
    }

    /// The shards' runtimes, by index.
    pub fn handles(&self) -> &[Handle] {
        &self.handles
    }

    /// How many shards there are.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// Never: there is at least one shard.
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// The shard the next connection goes to: each in turn.
    pub fn pick(&self) -> &Handle {
        let k = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        &self.handles[k]
    }

    /// Runs `task` on the next shard.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        drop(self.pick().spawn(task));
    }
}

/// How many shards to start for `configured` (0: one per core).
pub fn count(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_means_one_per_core_and_a_number_is_taken_as_given() {
        assert!(count(0) >= 1);
        assert_eq!(count(3), 3);
    }

    #[tokio::test]
    async fn tasks_run_on_the_shards_in_turn_and_stop_with_them() {
        let shards = Shards::start(2, 1).unwrap();
        assert_eq!(shards.len(), 2);
        let mut names = Vec::new();
        for _ in 0..4 {
            let (tx, rx) = oneshot::channel();
            shards.spawn(async move {
                let name = std::thread::current().name().map(str::to_owned);
                let _ = tx.send((name.unwrap(), current()));
            });
            names.push(rx.await.unwrap());
        }
        let on = |k: usize| (format!("tandem-conn-{k}"), Some(k));
        assert_eq!(names, [on(0), on(1), on(0), on(1)]);
        assert_eq!(current(), None, "not on a shard here");
        // A task still running when the shards stop is dropped.
        let (tx, rx) = oneshot::channel::<()>();
        shards.spawn(async move {
            let _tx = tx;
            std::future::pending::<()>().await
        });
        drop(shards);
        assert!(rx.await.is_err());
    }
}
