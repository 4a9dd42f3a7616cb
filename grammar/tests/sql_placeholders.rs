//! PostgreSQL's numbered placeholders (`$1 … $n`) are written without `format!`;
//! they must read exactly as before, multi-digit numbers included, in text order.

use memdex_grammar::sql::{self, Dialect};
use memdex_grammar::{Schema, Type, Value};

/// The placeholders of `rows_by_keys` for `n` keys on PostgreSQL: `$1, $2, … $n`.
fn check(n: usize) {
    let schema = Schema::new("Item", "item").column("id", Type::Int, false).key("id");
    let keys: Vec<Value> = (0..n).map(|i| Value::Int(i64::try_from(i).unwrap_or(i64::MAX))).collect();
    let query = sql::rows_by_keys(Dialect::Postgres, &schema, &keys);
    let expected: Vec<String> = (1..=n).map(|i| format!("${i}")).collect();
    let list = format!("IN ({})", expected.join(", "));
    assert!(query.text.contains(&list), "{n} keys: {}", query.text);
    assert_eq!(query.params.len(), n);
}

#[test]
fn numbered_placeholders_read_as_decimal_numbers() {
    for n in [1, 9, 10, 11, 99, 100, 101, 1000, 1001] {
        check(n);
    }
}
