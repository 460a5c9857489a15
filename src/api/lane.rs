//! Where answers are computed: the long ones behind the short ones.
//!
//! A few endpoints answer with a row per creator and day, or per campaign, and take tens of
//! milliseconds at long periods; the others take about one. On a machine with few cores,
//! a short answer that waits for the cores behind long ones takes as long as they do
//! (Query at L in BENCHMARKS.md). So long answers (`Endpoint::LONG`) are computed on
//! threads of their own in the kernel's idle class (`SCHED_IDLE`, else at nice 10): the
//! kernel runs a short answer's thread first whenever both want a core, and the long ones
//! still get every cycle the short ones leave. `serve` gives them half of `--max-query-threads`,
//! so that the process has as many threads (and malloc arenas) as before.
//!
//! Among themselves the long answers go earliest due first ([`due`]): an answer is due at
//! its arrival plus an allowance of 0.25 ms a day of its period, at most 100 ms (all
//! time). A 7-day leaderboard, a few milliseconds of work, then overtakes the all-time
//! answers queued before it instead of waiting for each of them, and an all-time answer
//! is overtaken only by those that arrive within its allowance, so none waits forever.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// The nice value added to the long answers' threads, which counts where they cannot be
/// idle ([`idle`]). At 10, a thread gets about a tenth of the share of a thread at the
/// default priority when both are runnable (the kernel's weights are 110 against 1024).
const LONG_NICE: i32 = 10;

/// How long one long answer runs in the idle class before its thread competes for the
/// cores at nice 10 ([`watch`]): work at the default priority that kept every core busy
/// would otherwise hold it back for as long as it lasted.
const IDLE_FOR: Duration = Duration::from_millis(250);

/// How long a long answer of one day's period may wait for later ones, and at most.
const ALLOWANCE_PER_DAY: Duration = Duration::from_micros(250);
const ALLOWANCE_MAX: Duration = Duration::from_millis(100);

type Job = Box<dyn FnOnce() + Send>;

/// The long answers' queue; its threads start with the first long answer.
static LONG: OnceLock<Queue> = OnceLock::new();

/// How many threads the lane starts (0: one per core).
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// The lane's threads, as [`watch`] sees them.
static WORKERS: Mutex<Vec<Arc<Worker>>> = Mutex::new(Vec::new());

/// What [`Worker::busy_since`] counts from.
static EPOCH: OnceLock<Instant> = OnceLock::new();

/// A thread of the lane.
struct Worker {
    #[cfg(target_os = "linux")]
    native: thread_priority::ThreadId,
    /// When its current answer started, in µs after [`EPOCH`] plus one; 0 between answers.
    busy_since: AtomicU64,
    /// Whether [`watch`] took it out of the idle class during its current answer.
    lifted: AtomicBool,
}

/// Now, as [`Worker::busy_since`] counts (never 0).
fn micros() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64 + 1
}

/// Sets how many threads compute long answers, before the first one.
pub fn set_threads(n: usize) {
    THREADS.store(n, Ordering::Relaxed);
}

/// When an answer of a period of `days` days (`None`: all time, or unknown) is due: a long
/// answer's cost grows with its period, so a short period overtakes the long ones queued
/// before it, but never one that has waited its own allowance (the earliest due goes
/// first, so none waits forever).
pub fn due(arrived: Instant, days: Option<u32>) -> Instant {
    arrived + days.map_or(ALLOWANCE_MAX, |d| (ALLOWANCE_PER_DAY * d).min(ALLOWANCE_MAX))
}

/// Long answers waiting for a thread (none before the first).
pub fn waiting() -> usize {
    LONG.get().map_or(0, |queue| queue.lock().len())
}

/// Runs `f` on a thread of the long answers' lane, the earliest `due` first, and returns its
/// result; `None` if `f` panicked.
pub async fn run_long<T: Send + 'static>(due: Instant, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = tx.send(f());
    });
    LONG.get_or_init(Queue::start).push(due, job);
    rx.await.ok()
}

/// Long answers waiting, the earliest due on top.
struct Queue {
    jobs: Mutex<BinaryHeap<Reverse<Queued>>>,
    ready: Condvar,
    /// Arrival order, to break ties.
    seq: AtomicU64,
}

struct Queued {
    due: Instant,
    seq: u64,
    job: Job,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}

impl Eq for Queued {}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Queued {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

impl Queue {
    fn new() -> Queue {
        Queue { jobs: Mutex::new(BinaryHeap::new()), ready: Condvar::new(), seq: AtomicU64::new(0) }
    }

    /// The queue, and the lane's threads taking from it; they live as long as the process.
    fn start() -> Queue {
        let threads = match THREADS.load(Ordering::Relaxed) {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        for i in 0..threads {
            std::thread::Builder::new()
                .name(format!("goatview-long-{i}"))
                .spawn(work)
                .expect("spawning a query thread");
        }
        #[cfg(target_os = "linux")]
        std::thread::Builder::new()
            .name("goatview-long-watch".into())
            .spawn(watch)
            .expect("spawning the long answers' watchdog thread");
        Queue::new()
    }

    fn push(&self, due: Instant, job: Job) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        self.lock().push(Reverse(Queued { due, seq, job }));
        self.ready.notify_one();
    }

    /// The earliest due job, waiting for one.
    fn pop(&self) -> Job {
        let mut jobs = self.lock();
        loop {
            if let Some(Reverse(queued)) = jobs.pop() {
                return queued.job;
            }
            jobs = self.ready.wait(jobs).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    // Jobs run outside the lock, so a panic cannot poison it; its heap stays whole anyway.
    fn lock(&self) -> MutexGuard<'_, BinaryHeap<Reverse<Queued>>> {
        self.jobs.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn work() {
    // On Linux the nice value belongs to the calling thread alone.
    let nice = rustix::process::getpriority_process(None).map_or(LONG_NICE, |n| (n + LONG_NICE).min(19));
    idle(nice);
    let me = Arc::new(Worker {
        #[cfg(target_os = "linux")]
        native: thread_priority::thread_native_id(),
        busy_since: AtomicU64::new(0),
        lifted: AtomicBool::new(false),
    });
    WORKERS.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(me.clone());
    // The queue is set just after its threads are spawned; `wait` blocks until it is.
    let queue = LONG.wait();
    loop {
        let job = queue.pop();
        if me.lifted.swap(false, Ordering::Relaxed) {
            idle(nice);
        }
        me.busy_since.store(micros(), Ordering::Relaxed);
        // A panic fails its own request (its sender is dropped), not the thread.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
        me.busy_since.store(0, Ordering::Relaxed);
    }
}

/// Puts the calling thread in `SCHED_IDLE`, at `nice` for when [`watch`] takes it out: a
/// thread at the default priority that wakes up takes the core at once instead of waiting
/// for a time slice, which at nice 10 left short answers up to 16 ms behind long ones at
/// p99. Idle threads still get every cycle no other thread wants, but little more: a
/// process busy on every core at the default priority (replaying L₃ beside the server)
/// delayed long answers to 0.8 s at p99 instead of 0.3 s (BENCHMARKS.md, Query at L,
/// twenty-first session). Where the kernel refuses, the thread has `nice` only.
fn idle(nice: i32) {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy};
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        // Besides the policy this sets the nice value to 0, which an unprivileged thread
        // at a higher one cannot: so the policy itself is checked afterwards.
        let _ = thread_priority::set_thread_priority_and_policy(
            thread_priority::thread_native_id(),
            ThreadPriority::Min,
            idle,
        );
        match thread_priority::thread_schedule_policy() {
            Ok(p) if p == idle => {}
            other => tracing::warn!(policy = ?other, "Could not make a thread for long answers idle."),
        }
    }
    if let Err(e) = rustix::process::setpriority_process(None, nice) {
        tracing::warn!(error = %e, "Could not lower the priority of a thread for long answers.");
    }
}

/// Takes a lane thread out of the idle class, back to the default policy at its nice
/// value, once its answer has run for [`IDLE_FOR`]; the thread goes back to idle at its
/// next answer. Runs on a thread of its own at the default priority, which the kernel
/// wakes on time whatever keeps the cores busy.
#[cfg(target_os = "linux")]
fn watch() {
    use thread_priority::{NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy};
    let other = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other);
    let mine = rustix::process::getpriority_process(None).unwrap_or(0);
    loop {
        std::thread::sleep(IDLE_FOR / 5);
        // Filled once as the lane starts; held here only for a few syscalls.
        let workers = WORKERS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for w in workers.iter() {
            let since = w.busy_since.load(Ordering::Relaxed);
            let long = since != 0 && micros().saturating_sub(since) >= IDLE_FOR.as_micros() as u64;
            if !long || w.lifted.swap(true, Ordering::Relaxed) {
                continue;
            }
            // This sets `w`'s policy, then tries to set the calling thread's nice value to
            // the priority given, which only a privileged process can: it is put back.
            let _ = thread_priority::set_thread_priority_and_policy(w.native, ThreadPriority::Max, other);
            let _ = rustix::process::setpriority_process(None, mine);
            match thread_priority::thread_schedule_policy_param(w.native) {
                Ok((p, _)) if p == other => tracing::debug!("A long answer left the idle class."),
                result => tracing::warn!(?result, "Could not take a thread for long answers out of the idle class."),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rustix::process::getpriority_process;

    use super::*;

    #[tokio::test]
    async fn long_answers_run_at_a_lower_priority_and_survive_a_panic() {
        let now = Instant::now();
        // The lane's threads start from this one, so they begin at its nice value.
        let here = getpriority_process(None).unwrap();
        let there = run_long(now, || getpriority_process(None).unwrap()).await.unwrap();
        assert!(there >= (here + LONG_NICE).min(19), "nice {there}, started at {here}");
        #[cfg(target_os = "linux")]
        assert_eq!(run_long(now, thread_policy).await, Some(SCHED_IDLE), "SCHED_IDLE");
        assert_eq!(run_long(now, || -> u8 { panic!("a bug in a query") }).await, None);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        for _ in 0..threads {
            assert_eq!(run_long(now, || 7).await, Some(7), "the lane answers after a panic");
        }
    }

    /// `SCHED_IDLE` and `SCHED_OTHER` in the kernel's numbering (`sched(7)`).
    #[cfg(target_os = "linux")]
    const SCHED_IDLE: u32 = 5;
    #[cfg(target_os = "linux")]
    const SCHED_OTHER: u32 = 0;

    /// An answer that runs past [`IDLE_FOR`] leaves the idle class, so that other work
    /// cannot hold it back for ever; the next answer on that thread is idle again.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_long_running_answer_leaves_the_idle_class() {
        let started = Instant::now();
        let (first, then, after) = run_long(started, move || {
            let first = thread_policy();
            while thread_policy() == SCHED_IDLE && started.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(5));
            }
            (first, thread_policy(), started.elapsed())
        })
        .await
        .unwrap();
        assert_eq!(first, SCHED_IDLE);
        assert_eq!(then, SCHED_OTHER, "taken out of the idle class after {after:?}");
        assert!(after >= IDLE_FOR, "{after:?}");

        // One answer per thread at once, each holding its thread until all have started.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let all = std::sync::Arc::new(std::sync::Barrier::new(threads));
        let answers: Vec<_> = (0..threads)
            .map(|_| {
                let all = all.clone();
                tokio::spawn(run_long(Instant::now(), move || {
                    let policy = thread_policy();
                    all.wait();
                    policy
                }))
            })
            .collect();
        for answer in answers {
            assert_eq!(answer.await.unwrap(), Some(SCHED_IDLE), "every thread idle again");
        }
    }

    /// The calling thread's scheduling policy, field 41 of its `stat` (`proc_pid_stat(5)`).
    #[cfg(target_os = "linux")]
    fn thread_policy() -> u32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // The fields after the command name, which is in parentheses, start at field 3.
        let after = &stat[stat.rfind(')').unwrap() + 1..];
        after.split_whitespace().nth(41 - 3).unwrap().parse().unwrap()
    }

    #[test]
    fn short_periods_overtake_long_ones_within_their_allowance() {
        let queue = Queue::new();
        let order = std::sync::Arc::new(Mutex::new(Vec::new()));
        let t0 = Instant::now();
        let push = |at: Duration, days: Option<u32>, name: &'static str| {
            let order = order.clone();
            queue.push(due(t0 + at, days), Box::new(move || order.lock().unwrap().push(name)));
        };
        push(Duration::ZERO, None, "all time, first");
        push(Duration::from_millis(1), Some(90), "90 days");
        push(Duration::from_millis(2), Some(7), "7 days");
        push(Duration::from_millis(2), Some(7), "7 days, later");
        // Arrives after the first all-time answer has waited its whole allowance, but
        // before the second has.
        push(Duration::from_millis(101), Some(1), "1 day, after the first's allowance");
        push(Duration::from_millis(3), Some(30_000), "3650 days and more: all time");
        for _ in 0..6 {
            queue.pop()();
        }
        assert_eq!(
            *order.lock().unwrap(),
            [
                "7 days",
                "7 days, later",
                "90 days",
                "all time, first",
                "1 day, after the first's allowance",
                "3650 days and more: all time"
            ]
        );
    }
}
