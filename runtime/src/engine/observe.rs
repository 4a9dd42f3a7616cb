//! What one operation did, told to `tracing` and (feature `metrics`) to the
//! `metrics` facade. The drivers open an [`Observation`] around every machine they
//! run and every transaction, count its round trips and statements as they move
//! them, and close it with the machine's own [`Outcome`]; the names and fields live
//! here once, so both drivers report alike.
//!
//! Span: `memdex` at DEBUG with `op`, `model`, `db.system` (OpenTelemetry's name for
//! the database), and on close `round_trips`, `db_queries`, `node_hits`,
//! `node_misses`, `object_hits`, `object_misses`, `near_hits`, `degraded`, `ok`.
//!
//! Metrics (feature `metrics`), labelled by `op` and `model`:
//! `memdex_operations_total` (and `ok = "false"` for failures),
//! `memdex_operation_seconds` (histogram), `memdex_cache_round_trips_total`,
//! `memdex_db_queries_total`, `memdex_node_hits_total`, `memdex_node_misses_total`,
//! `memdex_object_hits_total`, `memdex_object_misses_total`,
//! `memdex_near_hits_total`, `memdex_degraded_total`.

use std::time::Instant;

use memdex_grammar::Dialect;
use tracing::Span;
use tracing::field::Empty;

/// An operation's name and model, for its span and metrics.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Label {
    pub(crate) op: &'static str,
    pub(crate) model: &'static str,
}

impl Label {
    /// A transaction of either driver (its writes' statements and cache effects),
    /// which has no model of its own.
    pub(crate) const TRANSACTION: Label = Label { op: "transaction", model: "" };
}

/// What a machine learned about the cache while it ran (zero for machines that do
/// not read it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) node_hits: u64,
    pub(crate) node_misses: u64,
    pub(crate) object_hits: u64,
    pub(crate) object_misses: u64,
    pub(crate) near_hits: u64,
    pub(crate) degraded: bool,
}

/// OpenTelemetry's `db.system` for a dialect.
fn db_system(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "sqlite",
        Dialect::Postgres => "postgresql",
        Dialect::MySql => "mysql",
    }
}

/// One operation in flight: its span, its start, what the driver counted.
#[derive(Debug)]
pub(crate) struct Observation {
    // The label and the start are read only by the metrics (feature `metrics`).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    label: Label,
    span: Span,
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    started: Instant,
    round_trips: u64,
    db_queries: u64,
}

impl Observation {
    pub(crate) fn start(label: Label, dialect: Dialect) -> Observation {
        let span = tracing::debug_span!(
            "memdex",
            op = label.op,
            model = label.model,
            db.system = db_system(dialect),
            round_trips = Empty,
            db_queries = Empty,
            node_hits = Empty,
            node_misses = Empty,
            object_hits = Empty,
            object_misses = Empty,
            near_hits = Empty,
            degraded = Empty,
            ok = Empty,
        );
        Observation { label, span, started: Instant::now(), round_trips: 0, db_queries: 0 }
    }

    /// The span, to enter (blocking) or to instrument a future with (tokio).
    pub(crate) fn span(&self) -> &Span {
        &self.span
    }

    pub(crate) fn round_trip(&mut self) {
        self.round_trips += 1;
    }

    pub(crate) fn statement(&mut self) {
        self.db_queries += 1;
    }

    /// Records the operation's fields on its span and, with feature `metrics`, on
    /// the metrics facade.
    pub(crate) fn finish(self, outcome: Outcome, ok: bool) {
        let span = &self.span;
        span.record("round_trips", self.round_trips);
        span.record("db_queries", self.db_queries);
        span.record("node_hits", outcome.node_hits);
        span.record("node_misses", outcome.node_misses);
        span.record("object_hits", outcome.object_hits);
        span.record("object_misses", outcome.object_misses);
        span.record("near_hits", outcome.near_hits);
        span.record("degraded", outcome.degraded);
        span.record("ok", ok);
        #[cfg(feature = "metrics")]
        self.emit(outcome, ok);
    }

    #[cfg(feature = "metrics")]
    fn emit(&self, outcome: Outcome, ok: bool) {
        let labels = [("op", self.label.op), ("model", self.label.model)];
        let ok = if ok { "true" } else { "false" };
        metrics::counter!("memdex_operations_total", &[labels[0], labels[1], ("ok", ok)]).increment(1);
        metrics::histogram!("memdex_operation_seconds", &labels).record(self.started.elapsed().as_secs_f64());
        let counts = [
            ("memdex_cache_round_trips_total", self.round_trips),
            ("memdex_db_queries_total", self.db_queries),
            ("memdex_node_hits_total", outcome.node_hits),
            ("memdex_node_misses_total", outcome.node_misses),
            ("memdex_object_hits_total", outcome.object_hits),
            ("memdex_object_misses_total", outcome.object_misses),
            ("memdex_near_hits_total", outcome.near_hits),
            ("memdex_degraded_total", u64::from(outcome.degraded)),
        ];
        for (name, value) in counts.into_iter().filter(|&(_, value)| value > 0) {
            metrics::counter!(name, &labels).increment(value);
        }
    }
}
