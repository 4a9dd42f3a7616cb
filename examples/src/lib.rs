//! Shared pieces of the memdex examples.
