//! A cache wrapper for deterministic interleaving tests: every batch goes through
//! a hook the test sets, which can run another client's whole operation at exactly
//! that point, fail the batch (a cache that died after a commit), or run only part of
//! it (a batch whose ops land on different servers at different times).

use std::fmt;
use std::sync::{Arc, Mutex};

use memdex::cache::{CacheBackend, CacheError, CacheOp, CacheReply};

type Replies = Vec<Result<CacheReply, CacheError>>;

/// What a hook decides for one batch.
#[derive(Debug)]
pub enum Step {
    /// Send the batch on, unchanged.
    Proceed,
    /// Answer the batch with these replies instead (the hook may have sent some of
    /// the ops itself through `inner`).
    Reply(Replies),
}

type Hook = Box<dyn FnMut(&[CacheOp<'_>], &dyn CacheBackend) -> Step + Send>;

/// Shares one backend between several stores (two "processes" on one cache) and
/// lets a test step through the batches of one of them.
#[derive(Clone)]
pub struct Stepping {
    inner: Arc<dyn CacheBackend>,
    hook: Arc<Mutex<Option<Hook>>>,
}

impl fmt::Debug for Stepping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stepping").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl Stepping {
    pub fn new(inner: Arc<dyn CacheBackend>) -> Stepping {
        Stepping { inner, hook: Arc::new(Mutex::new(None)) }
    }

    /// The same backend without any hook, for the other "process".
    pub fn plain(&self) -> Box<dyn CacheBackend> {
        Box::new(Plain(self.inner.clone()))
    }

    /// Sets the hook for the next batches; it stays until it is replaced or cleared.
    pub fn on_batch(&self, hook: impl FnMut(&[CacheOp<'_>], &dyn CacheBackend) -> Step + Send + 'static) {
        *self.hook.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(hook));
    }

    pub fn clear(&self) {
        *self.hook.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

impl CacheBackend for Stepping {
    fn run(&self, ops: &[CacheOp<'_>]) -> Replies {
        // The hook is taken out while it runs, so that it can use the store it is
        // attached to without recursing into itself.
        let hook = self.hook.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(mut hook) = hook else { return self.inner.run(ops) };
        let step = hook(ops, &*self.inner);
        let mut slot = self.hook.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(hook);
        }
        drop(slot);
        match step {
            Step::Proceed => self.inner.run(ops),
            Step::Reply(replies) => replies,
        }
    }

    fn max_value_size(&self) -> usize {
        self.inner.max_value_size()
    }

    fn describe(&self) -> String {
        format!("stepping({})", self.inner.describe())
    }
}

#[derive(Debug)]
struct Plain(Arc<dyn CacheBackend>);

impl CacheBackend for Plain {
    fn run(&self, ops: &[CacheOp<'_>]) -> Replies {
        self.0.run(ops)
    }
    fn max_value_size(&self) -> usize {
        self.0.max_value_size()
    }
    fn describe(&self) -> String {
        self.0.describe()
    }
}

/// Replies that say the cache is unreachable, one per op.
pub fn unreachable(ops: &[CacheOp<'_>]) -> Replies {
    ops.iter().map(|_| Err(CacheError::Unreachable { server: "test".into(), reason: "stepped down".into() })).collect()
}
