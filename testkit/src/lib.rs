//! Generators shared by memdex's test crates.
//!
//! This crate sits below every memdex crate (it depends on none of them), so that
//! `memdex-grammar`'s own tests and `memdex-tests` draw from one generator instead of
//! keeping copies that drift apart. Test support that needs the runtime (servers,
//! stores, the differential world) lives in `memdex-tests`' library instead.

pub mod soup;
