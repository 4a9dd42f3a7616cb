//! The drivers: they run the core's machines (`crate::engine`) over real I/O and
//! know no race rule. `blocking` over std sockets and blocking database pools;
//! `tokio` (feature `tokio`) over `tokio::net` and async pools.

#[cfg(feature = "tokio")]
pub(crate) mod asynchronous;
pub(crate) mod blocking;
