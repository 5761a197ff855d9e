//! Where log lines go: appended to a buffer in memory, and written to
//! stderr in batches by a thread of their own.
//!
//! The first line into an empty buffer wakes the thread, which lets lines
//! gather for `GATHER` and then writes them all with one system call. So a
//! line reaches stderr within about `GATHER` of being logged, yet under
//! load the thread wakes a few hundred times a second rather than once per
//! line: on two cores, a log thread woken for every line preempted the
//! workers for as long as the line itself took to produce. A request never
//! waits on a write to the log unless the buffer is full, and then it
//! writes the buffer out itself: nothing is dropped. The guard writes what
//! is left when it is dropped.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

const GATHER: Duration = Duration::from_millis(2);
/// A buffer this full is written out at once, by the thread that filled it.
const FLUSH_AT_BYTES: usize = 256 * 1024;

struct Shared {
    pending: Mutex<Vec<u8>>,
    /// Held while a batch is written, so that batches reach the output in
    /// the order their lines were logged.
    output: Mutex<Box<dyn Write + Send>>,
    stopping: AtomicBool,
    /// Signalled when the buffer stops being empty, and at the end.
    wake: Condvar,
}

impl Shared {
    fn lock_pending(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn append(&self, line: &[u8]) {
        let (first, full) = {
            let mut pending = self.lock_pending();
            let first = pending.is_empty();
            pending.extend_from_slice(line);
            (first, pending.len() >= FLUSH_AT_BYTES)
        };
        if full {
            self.flush();
        } else if first {
            self.wake.notify_one();
        }
    }

    /// The flushing thread: waits for a first line, lets more gather,
    /// writes them; until the guard is dropped.
    fn run(&self) {
        loop {
            {
                let pending = self.lock_pending();
                let _pending = self
                    .wake
                    .wait_while(pending, |p| {
                        p.is_empty() && !self.stopping.load(Ordering::Acquire)
                    })
                    .unwrap_or_else(|e| e.into_inner());
            }
            if self.stopping.load(Ordering::Acquire) {
                return;
            }
            std::thread::sleep(GATHER);
            self.flush();
        }
    }

    fn flush(&self) {
        let mut output = self.output.lock().unwrap_or_else(|e| e.into_inner());
        let batch = std::mem::take(&mut *self.lock_pending());
        if !batch.is_empty() {
            // stderr is all there is to report a failed write of stderr to.
            let _ = output.write_all(&batch);
            let _ = output.flush();
        }
    }
}

/// The `MakeWriter` of the log's layer.
#[derive(Clone)]
pub struct BufferedLog(Arc<Shared>);

/// Keep it until the end: dropping it stops the flushing thread and writes
/// what is left.
pub struct FlushGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl BufferedLog {
    pub fn new(output: impl Write + Send + 'static) -> (BufferedLog, FlushGuard) {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Vec::with_capacity(FLUSH_AT_BYTES)),
            output: Mutex::new(Box::new(output)),
            stopping: AtomicBool::new(false),
            wake: Condvar::new(),
        });
        let flusher = shared.clone();
        let thread = std::thread::Builder::new()
            .name("leakguard-log".into())
            .spawn(move || flusher.run())
            .ok();
        let guard = FlushGuard {
            shared: shared.clone(),
            thread,
        };
        (BufferedLog(shared), guard)
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        // Under the lock, so the thread is either waiting (and wakes) or
        // has yet to look at `stopping`.
        drop(self.shared.lock_pending());
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // Also when the thread could not be started.
        self.shared.flush();
    }
}

/// One event's line: appended whole, so lines from different threads never
/// interleave. A line written in pieces is gathered until the event is done.
pub struct LineWriter<'a> {
    shared: &'a Shared,
    line: Vec<u8>,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        // tracing's formatter hands over each line whole, in one write:
        // that goes straight in, without a copy of its own.
        if self.line.is_empty() && bytes.ends_with(b"\n") {
            self.shared.append(bytes);
        } else {
            self.line.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter<'_> {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.shared.append(&self.line);
        }
    }
}

impl<'a> MakeWriter<'a> for BufferedLog {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> LineWriter<'a> {
        LineWriter {
            shared: &self.0,
            line: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use test_support::output::Captured;

    use super::*;

    fn log(writer: &BufferedLog, line: &str) {
        writer.make_writer().write_all(line.as_bytes()).unwrap();
    }

    #[test]
    fn lines_arrive_whole_and_in_order_without_a_flush() {
        let sink = Captured::default();
        let (writer, _guard) = BufferedLog::new(sink.clone());
        log(&writer, "one\n");
        log(&writer, "two\n");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while sink.len() < 8 && std::time::Instant::now() < deadline {
            std::thread::sleep(GATHER);
        }
        assert_eq!(String::from_utf8(sink.bytes()).unwrap(), "one\ntwo\n");
    }

    #[test]
    fn dropping_the_guard_writes_what_is_left() {
        let sink = Captured::default();
        let (writer, guard) = BufferedLog::new(sink.clone());
        log(&writer, "last words\n");
        drop(guard);
        assert_eq!(sink.bytes(), b"last words\n");
    }

    #[test]
    fn a_full_buffer_is_written_by_the_thread_that_filled_it() {
        let sink = Captured::default();
        let (writer, _guard) = BufferedLog::new(sink.clone());
        let line = format!("{}\n", "x".repeat(1023));
        let lines = FLUSH_AT_BYTES / line.len();
        for _ in 0..lines {
            log(&writer, &line);
        }
        // Well before the flushing thread's turn.
        assert_eq!(sink.len(), lines * line.len());
    }

    #[test]
    fn lines_from_many_threads_never_interleave() {
        let sink = Captured::default();
        let (writer, guard) = BufferedLog::new(sink.clone());
        std::thread::scope(|s| {
            for t in 0..4 {
                let writer = writer.clone();
                s.spawn(move || {
                    for i in 0..2_000 {
                        let mut w = writer.make_writer();
                        // In pieces, as the formatter writes.
                        write!(w, "thread {t} ").unwrap();
                        writeln!(w, "line {i}").unwrap();
                    }
                });
            }
        });
        drop(guard);
        let text = String::from_utf8(sink.bytes()).unwrap();
        assert_eq!(text.lines().count(), 8_000);
        assert!(text
            .lines()
            .all(|l| l.starts_with("thread ") && l.contains(" line ")));
        for t in 0..4 {
            let mine: Vec<usize> = text
                .lines()
                .filter(|l| l.starts_with(&format!("thread {t} ")))
                .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
                .collect();
            assert_eq!(mine, (0..2_000).collect::<Vec<_>>());
        }
    }
}
