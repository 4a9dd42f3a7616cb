//! Runs the LINQ-post example's program (`memdex_examples::linq::run`, what
//! `cargo run --example linq` prints) and checks its report: every query in both
//! forms, the SQL of every dialect, and the cache conversation. The program itself
//! fails when the two forms of a query disagree.

use std::error::Error;

#[test]
fn the_linq_report_shows_every_query_in_both_forms() -> Result<(), Box<dyn Error>> {
    let mut out = Vec::new();
    memdex_examples::linq::run(&mut out)?;
    let report = String::from_utf8(out)?;

    for query in [
        "recall(Customer, lambda c: c.FirstName.startswith(\"m\"))",
        "view(Master, lambda m: avg(m.Runs))",
        "SELECT * FROM Item WHERE CategoryID = 5",
        "get_items_in_cart(cart_id=42, limit=10, offset=30)",
    ] {
        assert!(report.contains(query), "{query} missing from:\n{report}");
    }
    for form in [
        "closure: select!(Customer, |c| c.first_name.starts_with(\"m\"))",
        "text:    lambda c: c.first_name.startswith(\"m\")",
        "closure: view!(Master, |m| avg(m.runs))",
        "text:    lambda m: avg(m.runs)",
        "text:    lambda i: i.category_id == cat   where cat = 5",
    ] {
        assert!(report.contains(form), "{form} missing from:\n{report}");
    }
    // The SQL of each dialect, told apart by how it quotes and binds.
    assert!(report.contains("  sqlite    SELECT"), "no SQLite SQL in:\n{report}");
    assert!(report.contains("  postgres  SELECT") && report.contains("$1"), "no PostgreSQL SQL in:\n{report}");
    assert!(report.contains("  mysql     SELECT") && report.contains('`'), "no MySQL SQL in:\n{report}");
    assert!(report.contains("plan for Customer:"), "no explain in:\n{report}");
    assert!(report.lines().any(|line| line.starts_with("  | get ")), "no `get` conversation line in:\n{report}");
    // The customers whose first name starts with a lower-case "m", and not Mads.
    assert!(report.contains("mira") && report.contains("mikkel") && !report.contains("Mads"), "{report}");
    assert!(report.contains("every query: both forms agree"), "{report}");
    Ok(())
}
