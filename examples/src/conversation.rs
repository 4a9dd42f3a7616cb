//! Captures the cache conversation a store prints through `StoreBuilder::trace_to`,
//! so that a program can show the lines of one query under that query instead of
//! letting them interleave with its own output.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use memdex::StoreBuilder;

/// The lines a store traced while recording was on. Clones share one log.
#[derive(Clone, Debug, Default)]
pub struct ConversationLog {
    inner: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    recording: AtomicBool,
    lines: Mutex<Vec<String>>,
}

impl ConversationLog {
    /// A log that records nothing until [`ConversationLog::record`] is called.
    pub fn new() -> ConversationLog {
        ConversationLog::default()
    }

    /// The builder with its trace sent to this log.
    pub fn attach(&self, builder: StoreBuilder) -> StoreBuilder {
        let log = self.clone();
        builder.trace_to(move |line| {
            if log.inner.recording.load(Ordering::Relaxed) {
                log.lines().push(line.to_owned());
            }
        })
    }

    /// Runs `f` and returns what it returned with the lines traced meanwhile.
    pub fn record<R>(&self, f: impl FnOnce() -> R) -> (R, Vec<String>) {
        self.lines().clear();
        self.inner.recording.store(true, Ordering::Relaxed);
        let result = f();
        self.inner.recording.store(false, Ordering::Relaxed);
        (result, std::mem::take(&mut *self.lines()))
    }

    fn lines(&self) -> MutexGuard<'_, Vec<String>> {
        // A thread that panicked while pushing a line leaves a whole list behind, so a
        // poisoned lock is still safe to use.
        self.inner.lines.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
