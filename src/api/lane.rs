//! Where answers are computed: the long ones behind the short ones.
//!
//! A few endpoints answer with a row per creator and day, or per campaign, and take tens of
//! milliseconds at long periods; the others take about one. On a machine with few cores,
//! a short answer that waits for the cores behind long ones takes as long as they do
//! (Query at L in BENCHMARKS.md). So long answers ([`Endpoint::LONG`]) are computed on
//! threads of their own at a lower OS priority (a higher nice value): the kernel runs a
//! short answer's thread first whenever both want a core, and the long ones still get
//! every cycle the short ones leave. `serve` gives them half of `--max-query-threads`,
//! so that the process has as many threads (and malloc arenas) as before.
//!
//! [`Endpoint::LONG`]: super::endpoint::Endpoint::LONG

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, OnceLock};

/// The nice value added to the long answers' threads. At 10, a thread gets about a tenth
/// of the share of a thread at the default priority when both are runnable (the kernel's
/// weights are 110 against 1024).
const LONG_NICE: i32 = 10;

type Job = Box<dyn FnOnce() + Send>;

/// The long answers' queue; its threads start with the first long answer.
static LONG: OnceLock<Sender<Job>> = OnceLock::new();

/// How many threads the lane starts (0: one per core).
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// Sets how many threads compute long answers, before the first one.
pub fn set_threads(n: usize) {
    THREADS.store(n, Ordering::Relaxed);
}

/// Runs `f` on a thread of the long answers' lane and returns its result; `None` if `f`
/// panicked.
pub async fn run_long<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = tx.send(f());
    });
    // The threads never end, so the queue is always open.
    LONG.get_or_init(start).send(job).ok()?;
    rx.await.ok()
}

/// Starts the lane's threads, each taking jobs from one queue.
fn start() -> Sender<Job> {
    let (tx, rx) = channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    let threads = match THREADS.load(Ordering::Relaxed) {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    for i in 0..threads {
        let rx = rx.clone();
        std::thread::Builder::new()
            .name(format!("goatview-long-{i}"))
            .spawn(move || work(&rx))
            .expect("spawning a query thread");
    }
    tx
}

fn work(rx: &Mutex<Receiver<Job>>) {
    // On Linux the nice value belongs to the calling thread alone.
    if let Err(e) = rustix::process::nice(LONG_NICE) {
        tracing::warn!(error = %e, "Could not lower the priority of a thread for long answers.");
    }
    loop {
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        let Ok(job) = job else { return };
        // A panic fails its own request (its sender is dropped), not the thread.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
    }
}

#[cfg(test)]
mod tests {
    use rustix::process::getpriority_process;

    use super::*;

    #[tokio::test]
    async fn long_answers_run_at_a_lower_priority_and_survive_a_panic() {
        // The lane's threads start from this one, so they begin at its nice value.
        let here = getpriority_process(None).unwrap();
        let there = run_long(|| getpriority_process(None).unwrap()).await;
        assert_eq!(there, Some((here + LONG_NICE).min(19)));
        assert_eq!(run_long(|| -> u8 { panic!("a bug in a query") }).await, None);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        for _ in 0..threads {
            assert_eq!(run_long(|| 7).await, Some(7), "the lane answers after a panic");
        }
    }
}
