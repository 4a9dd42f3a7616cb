//! The cache conversation trace: with `StoreBuilder::trace(true)` every cache and
//! database exchange is printed the way the memcached-indices post shows it
//! (`get Item:category_id=5`, `SELECT …`, `append …`). Every line is also a
//! `tracing` event at TRACE level on target `memdex::conversation`.

use std::fmt;

use crate::cache::{CacheError, CacheOp, CacheReply};

/// A function that receives each trace line.
pub(crate) type TraceSink = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

/// Where trace lines go.
#[derive(Clone, Default)]
pub(crate) struct Tracer {
    sink: Option<TraceSink>,
}

impl fmt::Debug for Tracer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.sink.is_some() { "Tracer(on)" } else { "Tracer(off)" })
    }
}

impl Tracer {
    pub(crate) fn new(sink: Option<TraceSink>) -> Tracer {
        Tracer { sink }
    }

    fn on(&self) -> bool {
        self.sink.is_some() || tracing::enabled!(target: "memdex::conversation", tracing::Level::TRACE)
    }

    pub(crate) fn line(&self, make: impl FnOnce() -> String) {
        if !self.on() {
            return;
        }
        let line = make();
        tracing::trace!(target: "memdex::conversation", "{line}");
        if let Some(sink) = &self.sink {
            sink(&line);
        }
    }

    /// One batch: each op and its reply.
    pub(crate) fn batch(&self, ops: &[CacheOp<'_>], replies: &[Result<CacheReply, CacheError>]) {
        if !self.on() {
            return;
        }
        for (op, reply) in ops.iter().zip(replies) {
            self.line(|| format!("{}  ->  {}", describe_op(op), describe_reply(reply)));
        }
    }

    pub(crate) fn sql(&self, text: &str, params: usize) {
        self.line(|| format!("{text}  [{params} bound]"));
    }
}

fn describe_op(op: &CacheOp<'_>) -> String {
    match op {
        CacheOp::Get { key, lease: None } => format!("get {key}"),
        CacheOp::Get { key, lease: Some(t) } => format!("get {key} (lease {t}s on miss)"),
        CacheOp::GetCas { key } => format!("get cas {key}"),
        CacheOp::Set { key, value, ttl } => format!("set {key} {ttl} {}", value.len()),
        CacheOp::Cas { key, value, ttl, cas } => format!("cas {key} {ttl} {} {cas}", value.len()),
        CacheOp::Append { key, value } => format!("append {key} {}", printable(value)),
        CacheOp::Delete { key } => format!("delete {key}"),
    }
}

fn describe_reply(r: &Result<CacheReply, CacheError>) -> String {
    match r {
        Ok(CacheReply::Hit { value, .. }) => format!("hit ({} bytes)", value.len()),
        Ok(CacheReply::Miss) => "miss".into(),
        Ok(CacheReply::LeaseWon { .. }) => "miss, lease won".into(),
        Ok(CacheReply::LeaseBusy) => "miss, lease busy".into(),
        Ok(other) => format!("{other:?}").to_lowercase(),
        Err(e) => format!("error: {e}"),
    }
}

fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).escape_debug().to_string()
}
