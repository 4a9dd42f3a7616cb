//! Compile-fail tests: each mistake gives one error, at the code it is about,
//! saying what to do. One folder per error family under `tests/ui/`;
//! `TRYBUILD=overwrite` writes the `.stderr` files, and each was read.

#[test]
fn ui() {
    trybuild::TestCases::new().compile_fail("tests/ui/*/*.rs");
}
