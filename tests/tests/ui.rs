//! Compile-fail tests: each mistake gives one error, at the code it is about,
//! saying what to do. `TRYBUILD=overwrite` writes the `.stderr` files; each was read.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    for family in ["unindexable", "unsupported", "derive", "rustc", "view"] {
        t.compile_fail(format!("tests/ui/{family}/*.rs"));
    }
}
