//! Writes taken off the request path: queued, then written by one thread in batches, in order, while
//! readers of the same store see everything queued before they asked ([`WriteBehind::flush`]).
//!
//! Llama Stack's inference store has the same queue (`max_write_queue_size`, `num_writers`) for
//! the same reason: an answered chat completion should not wait for its row. Here one writer
//! thread suffices (SQLite takes one writer at a time) and a batch is one transaction, so a burst
//! of completions costs one commit. A full queue makes the caller wait for room (no completion is
//! dropped); dropping the [`WriteBehind`] writes what is queued and joins the thread.
//!
//! Once woken by a write, the writer gathers for up to [`GATHER`] before it commits, unless a
//! reader is waiting or a batch is full: under load that is one wake-up and one commit per
//! [`GATHER`] instead of one of each per write (a thread woken and a transaction committed for
//! every answered request cost a fifth of a replaying server's CPU).

use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

/// How many writes wait at most (Llama Stack's default `max_write_queue_size`).
pub const QUEUE: usize = 10_000;

/// How many queued writes one transaction takes at most.
const BATCH: usize = 256;

/// How long the writer waits for more writes before committing a batch that is not full.
pub const GATHER: std::time::Duration = std::time::Duration::from_millis(10);

#[derive(Default)]
struct Progress {
    queued: u64,
    written: u64,
    /// Readers waiting in [`WriteBehind::flush`]: the writer does not gather while there are any.
    flushing: u32,
    /// The queue is closing: the writer writes what is left without waiting.
    closing: bool,
}

#[derive(Default)]
struct Shared {
    progress: Mutex<Progress>,
    changed: Condvar,
}

impl Shared {
    fn progress(&self) -> MutexGuard<'_, Progress> {
        support::sync::lock(&self.progress)
    }
}

/// A queue of writes of type `J` and the thread that carries them out (see the module docs).
pub struct WriteBehind<J: Send + 'static> {
    /// `None` only while dropping (closing the queue ends the thread).
    sender: Option<SyncSender<J>>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl<J: Send + 'static> std::fmt::Debug for WriteBehind<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = self.shared.progress();
        f.debug_struct("WriteBehind")
            .field("queued", &p.queued)
            .field("written", &p.written)
            .finish()
    }
}

impl<J: Send + 'static> WriteBehind<J> {
    /// Starts the writer thread `name`; `write` writes one batch (in one transaction) and reports
    /// its own failures.
    pub fn start(
        name: &str,
        write: impl Fn(Vec<J>) + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        let (sender, receiver) = std::sync::mpsc::sync_channel(QUEUE);
        let shared = Arc::new(Shared::default());
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(name.to_owned())
                .spawn(move || run(&receiver, &shared, &write))?
        };
        Ok(WriteBehind {
            sender: Some(sender),
            shared,
            thread: Some(thread),
        })
    }

    /// Queues `job`. When the queue is full this waits for room (the writer is behind by
    /// [`QUEUE`] writes: the caller is slowed down rather than a write dropped or reordered).
    pub fn push(&self, job: J) {
        let Some(sender) = &self.sender else {
            return;
        };
        // Counted before it is sent, so that a flush after this call waits for it.
        self.shared.progress().queued += 1;
        let sent = match sender.try_send(job) {
            Ok(()) => true,
            Err(TrySendError::Full(job)) => wait_to_send(sender, job),
            Err(TrySendError::Disconnected(_)) => false,
        };
        // The thread ends only when the queue closes (`run` catches a panicking write): not
        // while this sender lives. Should it be gone anyway, readers must not wait for the job.
        if !sent {
            tracing::error!("a queued write was lost: its writer thread is gone");
            self.done(1);
        }
    }

    /// Waits until everything queued before this call is written (without the writer's
    /// [`GATHER`] wait).
    pub fn flush(&self) {
        let mut p = self.shared.progress();
        let target = p.queued;
        if p.written >= target {
            return;
        }
        p.flushing += 1;
        drop(p);
        self.wake_writer();
        let mut p = self.shared.progress();
        while p.written < target {
            p = self
                .shared
                .changed
                .wait(p)
                .unwrap_or_else(PoisonError::into_inner);
        }
        p.flushing -= 1;
    }

    /// Ends the writer's [`GATHER`] wait, if it is in one.
    fn wake_writer(&self) {
        if let Some(thread) = &self.thread {
            thread.thread().unpark();
        }
    }

    fn done(&self, n: u64) {
        self.shared.progress().written += n;
        self.shared.changed.notify_all();
    }
}

/// Sends `job`, waiting for room; on a worker of a multi-threaded tokio runtime the wait is
/// announced (`block_in_place`), so the runtime moves its other tasks to another worker instead
/// of stalling them. Whether it was sent (not when the writer is gone).
fn wait_to_send<J>(sender: &SyncSender<J>, job: J) -> bool {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    let send = move || sender.send(job).is_ok();
    if multi_thread {
        tokio::task::block_in_place(send)
    } else {
        send()
    }
}

impl<J: Send + 'static> Drop for WriteBehind<J> {
    fn drop(&mut self) {
        // Closing the queue ends the thread once it has written what is left.
        self.sender = None;
        self.shared.progress().closing = true;
        self.wake_writer();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run<J>(receiver: &Receiver<J>, shared: &Shared, write: &(dyn Fn(Vec<J>) + Send + Sync)) {
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        if !take_queued(receiver, &mut batch) {
            gather(shared);
            take_queued(receiver, &mut batch);
        }
        let n = batch.len() as u64;
        // A panicking write must not leave readers waiting forever.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| write(batch)));
        shared.progress().written += n;
        shared.changed.notify_all();
    }
}

/// Moves queued jobs into `batch` until it holds [`BATCH`]; whether it is full. A closed queue
/// (the [`WriteBehind`] dropped) counts as full: there is nothing left to wait for.
fn take_queued<J>(receiver: &Receiver<J>, batch: &mut Vec<J>) -> bool {
    while batch.len() < BATCH {
        match receiver.try_recv() {
            Ok(job) => batch.push(job),
            Err(TryRecvError::Empty) => return false,
            Err(TryRecvError::Disconnected) => return true,
        }
    }
    true
}

/// Waits up to [`GATHER`] for more writes, unless a reader is flushing or the queue closing. Parked, not blocked on
/// the queue, so the writes queued meanwhile do not wake the thread; [`WriteBehind::flush`] and
/// dropping the queue unpark it.
fn gather(shared: &Shared) {
    let deadline = std::time::Instant::now() + GATHER;
    loop {
        let p = shared.progress();
        if p.flushing > 0 || p.closing {
            return;
        }
        drop(p);
        let now = std::time::Instant::now();
        if now >= deadline {
            return;
        }
        std::thread::park_timeout(deadline - now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flush_sees_every_write_queued_before_it_and_drop_writes_the_rest() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let batches = Arc::new(Mutex::new(0));
        let queue = {
            let (seen, batches) = (seen.clone(), batches.clone());
            WriteBehind::start("test-writer", move |jobs: Vec<u32>| {
                std::thread::sleep(std::time::Duration::from_millis(2));
                *batches.lock().unwrap() += 1;
                seen.lock().unwrap().extend(jobs);
            })
            .unwrap()
        };
        for i in 0..500 {
            queue.push(i);
        }
        queue.flush();
        assert_eq!(seen.lock().unwrap().len(), 500);
        assert_eq!(*seen.lock().unwrap(), (0..500).collect::<Vec<_>>());
        // Batched: far fewer transactions than writes.
        assert!(*batches.lock().unwrap() < 100);
        for i in 500..600 {
            queue.push(i);
        }
        drop(queue);
        assert_eq!(seen.lock().unwrap().len(), 600);
    }

    #[test]
    fn a_panicking_write_does_not_hang_readers() {
        let queue = WriteBehind::start("test-writer", |jobs: Vec<u32>| {
            if jobs.contains(&1) {
                panic!("boom");
            }
        })
        .unwrap();
        queue.push(1);
        queue.push(2);
        queue.flush();
    }
}
