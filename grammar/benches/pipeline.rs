//! Placeholder; the grammar-front helper fills in the parse+check+plan+SQL bench.
fn main() {}
