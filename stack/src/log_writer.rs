//! The server's log lines, written to stderr by a thread of their own in batches.
//!
//! Every request logs an access line. Written from the request's task, a slow terminal or a full
//! pipe would hold the request up; handed one by one to a writer thread (what
//! `tracing-appender`'s non-blocking writer does), every line wakes that thread, and under load
//! the wake-ups cost more than the lines (a tenth of a replaying server's CPU). Here lines are
//! appended to a shared buffer that a thread writes out every [`INTERVAL`], or sooner once
//! [`WAKE_AT`] bytes are waiting or a warning or an error comes. None is dropped: past [`MAX_PENDING`] bytes a logger waits for
//! the writer, and dropping the [`LogGuard`] writes what is left. No crate offers a writer that
//! batches by time (tracing-appender's worker wakes per line and takes no interval), hence this
//! one.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a line waits at most before it is written.
pub const INTERVAL: Duration = Duration::from_millis(20);

/// Pending bytes that wake the writer before its interval is up.
const WAKE_AT: usize = 64 * 1024;

/// Pending bytes past which loggers wait for the writer instead of growing the buffer.
const MAX_PENDING: usize = 4 * 1024 * 1024;

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    closed: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    /// Signalled when the writer has taken the pending bytes.
    taken: Condvar,
    writer: std::thread::Thread,
}

impl Shared {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        support::sync::lock(&self.pending)
    }
}

/// A [`tracing_subscriber::fmt::MakeWriter`] that hands lines to the batching thread.
#[derive(Clone)]
pub struct LogWriter {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriter").finish_non_exhaustive()
    }
}

/// Keeps the writer thread; dropping it writes every pending line and ends the thread.
#[derive(Debug)]
pub struct LogGuard {
    writer: LogWriter,
    thread: Option<JoinHandle<()>>,
}

/// Starts the thread `name` writing batches to `out`.
pub fn start(
    name: &str,
    out: impl Write + Send + 'static,
) -> std::io::Result<(LogWriter, LogGuard)> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Arc<Shared>>();
    let thread = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            if let Ok(shared) = ready_rx.recv() {
                write_batches(&shared, out);
            }
        })?;
    let shared = Arc::new(Shared {
        pending: Mutex::default(),
        taken: Condvar::new(),
        writer: thread.thread().clone(),
    });
    // The thread only waits for this: it cannot have ended, so the send cannot fail.
    let _ = ready_tx.send(shared.clone());
    let writer = LogWriter { shared };
    Ok((
        writer.clone(),
        LogGuard {
            writer,
            thread: Some(thread),
        },
    ))
}

fn write_batches(shared: &Shared, mut out: impl Write) {
    loop {
        std::thread::park_timeout(INTERVAL);
        let (bytes, closed) = {
            let mut pending = shared.pending();
            (std::mem::take(&mut pending.bytes), pending.closed)
        };
        shared.taken.notify_all();
        if !bytes.is_empty() {
            // Nowhere to report a failed write of the log itself.
            let _ = out.write_all(&bytes).and_then(|()| out.flush());
        }
        if closed {
            return;
        }
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.writer.shared.pending().closed = true;
        self.writer.shared.writer.unpark();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One event's output, appended as it is written.
#[derive(Debug)]
pub struct LineSink<'a> {
    shared: &'a Shared,
    /// Wake the writer at once (a warning or an error: it may come just before the process
    /// ends, and it should be out first).
    urgent: bool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl Write for LineSink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut pending = self.shared.pending();
        while pending.bytes.len() >= MAX_PENDING && !pending.closed {
            self.shared.writer.unpark();
            pending = self
                .shared
                .taken
                .wait(pending)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if pending.closed {
            // After the guard is gone (the process is ending): straight out.
            drop(pending);
            return std::io::stderr().write(buf);
        }
        pending.bytes.extend_from_slice(buf);
        if self.urgent || pending.bytes.len() >= WAKE_AT {
            self.shared.writer.unpark();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LineSink<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineSink {
            shared: &self.shared,
            urgent: false,
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        LineSink {
            shared: &self.shared,
            urgent: *meta.level() <= tracing::Level::WARN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Write` whose bytes the test can read.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_written_in_order_by_the_time_the_guard_is_dropped() {
        let out = Captured::default();
        let (writer, guard) = start("test-log", out.clone()).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..5_000 {
                        let mut sink = tracing_subscriber::fmt::MakeWriter::make_writer(&writer);
                        sink.write_all(format!("{t} {i}\n").as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 20_000, "no line lost");
        for t in 0..4 {
            let mine: Vec<usize> = lines
                .iter()
                .filter_map(|l| l.strip_prefix(&format!("{t} ")))
                .map(|i| i.parse().unwrap())
                .collect();
            assert_eq!(
                mine,
                (0..5_000).collect::<Vec<_>>(),
                "each logger's lines whole and in order"
            );
        }
    }

    #[test]
    fn a_logger_past_the_limit_waits_for_the_writer_instead_of_dropping() {
        let out = Captured::default();
        let (writer, guard) = start("test-log", out.clone()).unwrap();
        let line = vec![b'x'; 1024 * 1024];
        let mut sink = tracing_subscriber::fmt::MakeWriter::make_writer(&writer);
        for _ in 0..(3 * MAX_PENDING / line.len()) {
            sink.write_all(&line).unwrap();
        }
        drop(guard);
        assert_eq!(out.0.lock().unwrap().len(), 3 * MAX_PENDING);
    }
}
