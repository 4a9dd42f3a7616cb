//! The SQLite SQL, run: each filter is emitted for SQLite, executed on an in-memory
//! database over awkward rows (NULLs, `%`, `_`, `\`, `[`, `*`, `?`, `'`, mixed case,
//! Unicode, empty strings, -0.0, an SQL-injection string), and the rows it returns
//! must be exactly those a plain Rust closure over the same rows accepts.

// A failing test reports by panicking, with the SQL that failed.
#![allow(clippy::panic)]

#[path = "support/sqlite.rs"]
mod sqlite_support;

use memdex_grammar::check::Aggregate;
use memdex_grammar::ir::{AggFunc, ArithOp, CmpOp, Expr, ExprKind, Haystack, StrOp};
use memdex_grammar::sql::{self, Dialect, OrderBy, SelectSpec};
use memdex_grammar::{Schema, Span, Type, Value};
use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;
use sqlite_support::sqlite_value;

#[derive(Clone, Debug)]
struct Row {
    id: i64,
    name: String,
    note: Option<String>,
    n: i64,
    x: f64,
    o: Option<i64>,
}

fn schema() -> Schema {
    Schema::new("Item", "item")
        .column("id", Type::Int, false)
        .column("name", Type::Text, false)
        .column("note", Type::Text, true)
        .column("n", Type::Int, false)
        .column("x", Type::Float, false)
        .column("o", Type::Int, true)
        .key("id")
        .index(&["n"], None)
        .index(&["name"], Some(2))
        .index(&["o"], None)
}

fn rows() -> Vec<Row> {
    let names = [
        "apple",
        "Apple",
        "APPLE",
        "a_b",
        "A_B",
        "axb",
        "a%b",
        "a\\b",
        "[ab]",
        "a*b",
        "a?b",
        "it's",
        "'; DROP TABLE item; --",
        "",
        "Ärger",
        "ärger",
        "ÄRGER",
        "straße",
        "Zebra",
        "zebra",
        "zebra ",
        "ab",
    ];
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let i = i as i64;
            Row {
                id: i + 1,
                name: (*name).to_owned(),
                note: match i % 4 {
                    0 => None,
                    1 => Some(String::new()),
                    2 => Some(name.to_uppercase()),
                    _ => Some("x_y".into()),
                },
                n: i * 3 - 20,
                x: match i % 5 {
                    0 => -0.0,
                    1 => 0.0,
                    2 => 1.5,
                    3 => -2.25,
                    _ => i as f64 * 10.0,
                },
                o: if i % 3 == 0 { None } else { Some(i % 7) },
            }
        })
        .collect()
}

fn to_values(r: &Row) -> Vec<Value> {
    vec![
        Value::Int(r.id),
        Value::from(r.name.as_str()),
        Value::from(r.note.clone()),
        Value::Int(r.n),
        Value::Float(r.x),
        Value::from(r.o),
    ]
}

/// A database with the table from `create_table` and every row inserted with
/// `insert`, plus `memdex_lower` (Rust's `to_lowercase`) as the runtime registers it.
fn database() -> Connection {
    let conn = Connection::open_in_memory().expect("in-memory SQLite");
    conn.create_scalar_function(
        "memdex_lower",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| Ok(ctx.get::<Option<String>>(0)?.map(|s| s.to_lowercase())),
    )
    .expect("register memdex_lower");
    let schema = schema();
    for statement in sql::create_table(Dialect::Sqlite, &schema) {
        conn.execute(&statement, []).expect("DDL runs");
    }
    for r in rows() {
        let q = sql::insert(Dialect::Sqlite, &schema, &to_values(&r));
        conn.execute(&q.text, rusqlite::params_from_iter(q.params.iter().map(sqlite_value))).expect("insert");
    }
    conn
}

fn run_ids(conn: &Connection, q: &sql::SqlQuery) -> Vec<i64> {
    let mut stmt = conn.prepare(&q.text).unwrap_or_else(|e| panic!("{e}: {}", q.text));
    stmt.query_map(rusqlite::params_from_iter(q.params.iter().map(sqlite_value)), |row| row.get::<_, i64>(0))
        .expect("query runs")
        .collect::<Result<Vec<_>, _>>()
        .expect("ids")
}

// --- IR builder -------------------------------------------------------------------

fn e(kind: ExprKind) -> Expr {
    Expr::new(kind, Span::DUMMY)
}
fn f(name: &str) -> Expr {
    Expr::field(name, Span::DUMMY)
}
fn lit(v: impl Into<Value>) -> Expr {
    Expr::lit(v, Span::DUMMY)
}
fn p(name: &str) -> Expr {
    Expr::param(name, Span::DUMMY)
}
fn cmp(a: Expr, op: CmpOp, b: Expr) -> Expr {
    Expr::cmp(op, a, b, Span::DUMMY)
}
fn and(v: Vec<Expr>) -> Expr {
    e(ExprKind::And(v))
}
fn or(v: Vec<Expr>) -> Expr {
    e(ExprKind::Or(v))
}
fn not(x: Expr) -> Expr {
    e(ExprKind::Not(Box::new(x)))
}
fn arith(a: Expr, op: ArithOp, b: Expr) -> Expr {
    e(ExprKind::Arith { op, lhs: Box::new(a), rhs: Box::new(b) })
}
fn st(subject: Expr, op: StrOp, pattern: &str) -> Expr {
    e(ExprKind::StrTest { op, subject: Box::new(subject), pattern: Box::new(lit(pattern)) })
}
fn in_items(needle: Expr, items: Vec<Expr>) -> Expr {
    e(ExprKind::In { needle: Box::new(needle), haystack: Haystack::Items(items) })
}
fn in_param(needle: Expr, name: &str) -> Expr {
    e(ExprKind::In { needle: Box::new(needle), haystack: Haystack::Param(name.into()) })
}

type Binding = (&'static str, Value);

/// Named values as the emitter reads them (`Params` is implemented for owned pairs).
fn bound(params: &[Binding]) -> Vec<(String, Value)> {
    params.iter().map(|(n, v)| ((*n).to_owned(), v.clone())).collect()
}
type Case = (&'static str, Expr, Vec<Binding>, fn(&Row) -> bool);

/// Runs `filter` on SQLite and compares the ids with the rows `expect` accepts.
fn check(conn: &Connection, name: &str, filter: &Expr, params: &[Binding], expect: fn(&Row) -> bool) {
    let spec = SelectSpec { filter: Some(filter), ..Default::default() };
    let q = sql::select(Dialect::Sqlite, &schema(), spec, &bound(params)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut got = run_ids(conn, &q);
    got.sort_unstable();
    let want: Vec<i64> = rows().iter().filter(|r| expect(r)).map(|r| r.id).collect();
    let names = |ids: &[i64]| -> Vec<String> { ids.iter().map(|&i| rows()[(i - 1) as usize].name.clone()).collect() };
    assert_eq!(got, want, "{name}: {}\n got {:?}\nwant {:?}", q.text, names(&got), names(&want));
}

#[test]
fn filters_agree_with_rust() {
    use CmpOp::*;
    use StrOp::*;
    let cases: Vec<Case> = vec![
        ("starts_with underscore", st(f("name"), StartsWith, "a_"), vec![], |r| r.name.starts_with("a_")),
        ("starts_with percent", st(f("name"), StartsWith, "a%"), vec![], |r| r.name.starts_with("a%")),
        ("contains backslash", st(f("name"), Contains, "\\"), vec![], |r| r.name.contains('\\')),
        ("contains bracket", st(f("name"), Contains, "["), vec![], |r| r.name.contains('[')),
        ("ends_with close bracket", st(f("name"), EndsWith, "]"), vec![], |r| r.name.ends_with(']')),
        ("contains star", st(f("name"), Contains, "*"), vec![], |r| r.name.contains('*')),
        ("contains question mark", st(f("name"), Contains, "?"), vec![], |r| r.name.contains('?')),
        ("contains quote", st(f("name"), Contains, "'"), vec![], |r| r.name.contains('\'')),
        ("starts_with is case-sensitive", st(f("name"), StartsWith, "A"), vec![], |r| r.name.starts_with('A')),
        ("ends_with is case-sensitive", st(f("name"), EndsWith, "le"), vec![], |r| r.name.ends_with("le")),
        ("starts_with empty matches all", st(f("name"), StartsWith, ""), vec![], |r| r.name.starts_with("")),
        ("contains empty matches all", st(f("name"), Contains, ""), vec![], |r| r.name.contains("")),
        ("contains unicode", st(f("name"), Contains, "ß"), vec![], |r| r.name.contains('ß')),
        ("not contains", not(st(f("name"), Contains, "b")), vec![], |r| !r.name.contains('b')),
        (
            "injection value is bound",
            cmp(f("name"), Eq, p("evil")),
            vec![("evil", Value::from("'; DROP TABLE item; --"))],
            |r| r.name == "'; DROP TABLE item; --",
        ),
        ("eq is exact", cmp(f("name"), Eq, lit("zebra")), vec![], |r| r.name == "zebra"),
        ("eq empty string", cmp(f("name"), Eq, lit("")), vec![], |r| r.name.is_empty()),
        ("text lt by bytes", cmp(f("name"), Lt, lit("a")), vec![], |r| r.name.as_str() < "a"),
        ("text ge by bytes", cmp(f("name"), Ge, lit("Z")), vec![], |r| r.name.as_str() >= "Z"),
        ("nullable eq", cmp(f("o"), Eq, lit(2)), vec![], |r| r.o == Some(2)),
        ("nullable ne keeps None", cmp(f("o"), Ne, lit(2)), vec![], |r| r.o != Some(2)),
        ("not nullable eq", not(cmp(f("o"), Eq, lit(2))), vec![], |r| r.o != Some(2)),
        ("eq None", cmp(f("o"), Eq, Expr::lit(Value::Null, Span::DUMMY)), vec![], |r| r.o.is_none()),
        ("nullable text eq param None", cmp(f("note"), Eq, p("n")), vec![("n", Value::Null)], |r| r.note.is_none()),
        ("nullable text ne empty", cmp(f("note"), Ne, lit("")), vec![], |r| r.note.as_deref() != Some("")),
        ("is_some", e(ExprKind::IsNull { expr: Box::new(f("o")), negated: true }), vec![], |r| r.o.is_some()),
        ("in items", in_items(f("n"), vec![lit(-20), lit(1), lit(7)]), vec![], |r| [-20, 1, 7].contains(&r.n)),
        ("in list param", in_param(f("id"), "ids"), vec![("ids", Value::from(vec![2, 4, 99]))], |r| {
            [2, 4, 99].contains(&r.id)
        }),
        ("in empty list", in_param(f("id"), "ids"), vec![("ids", Value::List(vec![]))], |_| false),
        ("not in empty list", not(in_param(f("id"), "ids")), vec![("ids", Value::List(vec![]))], |_| true),
        (
            "not in with None item",
            not(in_items(f("n"), vec![lit(-20), Expr::lit(Value::Null, Span::DUMMY)])),
            vec![],
            |r| r.n != -20,
        ),
        ("nullable in with None", in_items(f("o"), vec![lit(1), Expr::lit(Value::Null, Span::DUMMY)]), vec![], |r| {
            [Some(1), None].contains(&r.o)
        }),
        ("text in is exact", in_items(f("name"), vec![lit("apple"), lit("ZEBRA")]), vec![], |r| {
            ["apple", "ZEBRA"].contains(&r.name.as_str())
        }),
        ("len counts bytes", cmp(e(ExprKind::Len(Box::new(f("name")))), Eq, lit(6)), vec![], |r| r.name.len() == 6),
        ("to_lowercase is Unicode", cmp(e(ExprKind::Lower(Box::new(f("name")))), Eq, lit("ärger")), vec![], |r| {
            r.name.to_lowercase() == "ärger"
        }),
        (
            "eq_ignore_ascii_case is ASCII-only",
            e(ExprKind::IEq(Box::new(f("name")), Box::new(lit("ärger")))),
            vec![],
            |r| r.name.eq_ignore_ascii_case("ärger"),
        ),
        (
            "eq_ignore_ascii_case folds ASCII",
            e(ExprKind::IEq(Box::new(f("name")), Box::new(p("q")))),
            vec![("q", Value::from("aPPLE"))],
            |r| r.name.eq_ignore_ascii_case("aPPLE"),
        ),
        ("negative zero equals zero", cmp(f("x"), Eq, lit(0.0)), vec![], |r| r.x == 0.0),
        ("float lt", cmp(f("x"), Lt, lit(0.0)), vec![], |r| r.x < 0.0),
        ("int division truncates", cmp(arith(f("n"), ArithOp::Div, lit(4)), Eq, lit(-2)), vec![], |r| r.n / 4 == -2),
        ("remainder has dividend's sign", cmp(arith(f("n"), ArithOp::Rem, lit(3)), Eq, lit(-1)), vec![], |r| {
            r.n % 3 == -1
        }),
        (
            "division by zero is false",
            cmp(arith(f("n"), ArithOp::Div, arith(f("n"), ArithOp::Sub, f("n"))), Gt, lit(-1000)),
            vec![],
            |r| r.n.checked_div(r.n - r.n).is_some_and(|q| q > -1000),
        ),
        (
            "not of division by zero is true",
            not(cmp(arith(f("id"), ArithOp::Rem, arith(f("n"), ArithOp::Add, lit(20))), Eq, lit(0))),
            vec![],
            |r| r.id.checked_rem(r.n + 20).is_none_or(|m| m != 0),
        ),
        (
            "and/or/not nest",
            and(vec![
                or(vec![cmp(f("n"), Gt, lit(0)), e(ExprKind::IsNull { expr: Box::new(f("o")), negated: false })]),
                not(st(f("name"), StartsWith, "a")),
            ]),
            vec![],
            |r| (r.n > 0 || r.o.is_none()) && !r.name.starts_with('a'),
        ),
    ];
    assert!(cases.len() >= 25);
    let conn = database();
    for (name, filter, params, expect) in &cases {
        check(&conn, name, filter, params, *expect);
    }
    // The injection string was a value, never SQL: the table is intact.
    let count: i64 = conn.query_row("SELECT COUNT(*) FROM item", [], |r| r.get(0)).expect("table still exists");
    assert_eq!(count, rows().len() as i64);
}

/// `ORDER BY` puts `None` first ascending and last descending (Rust's `Option`
/// order), text by bytes; `LIMIT`/`OFFSET` page the same sequence.
#[test]
fn order_and_paging_agree_with_rust() {
    let conn = database();
    let schema = schema();
    let cases: Vec<(Vec<OrderBy>, Option<u64>, Option<u64>)> = vec![
        (vec![OrderBy { column: 2, desc: false }], None, None),
        (vec![OrderBy { column: 2, desc: true }], None, None),
        (vec![OrderBy { column: 1, desc: false }], Some(5), Some(3)),
        (vec![OrderBy { column: 5, desc: true }, OrderBy { column: 4, desc: false }], None, Some(4)),
        (vec![], Some(3), None),
    ];
    for (order, limit, offset) in cases {
        let q = sql::select(
            Dialect::Sqlite,
            &schema,
            SelectSpec { filter: None, order: &order, limit, offset },
            &bound(&[]),
        )
        .expect("no params");
        let got = run_ids(&conn, &q);
        let mut want = rows();
        want.sort_by(|a, b| {
            let (va, vb) = (to_values(a), to_values(b));
            order
                .iter()
                .map(|o| {
                    let c = va[o.column].order(&vb[o.column]);
                    if o.desc { c.reverse() } else { c }
                })
                .find(|c| c.is_ne())
                .unwrap_or(a.id.cmp(&b.id))
        });
        let want: Vec<i64> = want
            .iter()
            .skip(offset.unwrap_or(0) as usize)
            .take(limit.map_or(usize::MAX, |l| l as usize))
            .map(|r| r.id)
            .collect();
        assert_eq!(got, want, "{}", q.text);
    }
}

#[test]
fn count_aggregates_node_keys_and_writes() {
    let conn = database();
    let schema = schema();
    let all = rows();
    let none = bound(&[]);

    let filter = cmp(f("n"), CmpOp::Gt, lit(0));
    let q = sql::count(Dialect::Sqlite, &schema, Some(&filter), &none).expect("count");
    let n: i64 = conn
        .query_row(&q.text, rusqlite::params_from_iter(q.params.iter().map(sqlite_value)), |r| r.get(0))
        .expect("count runs");
    assert_eq!(n, all.iter().filter(|r| r.n > 0).count() as i64);

    // AVG and SUM are floating point, MIN/MAX skip NULLs.
    let agg = |func, arg: &str| Aggregate { func, arg: Some(f(arg)), span: Span::DUMMY, arg_type: Some(Type::Int) };
    let run = |a: &Aggregate| -> Option<f64> {
        let q = sql::aggregate(Dialect::Sqlite, &schema, None, a, &none).expect("aggregate");
        conn.query_row(&q.text, rusqlite::params_from_iter(q.params.iter().map(sqlite_value)), |r| {
            r.get::<_, Option<f64>>(0)
        })
        .expect("aggregate runs")
    };
    let sum: i64 = all.iter().map(|r| r.n).sum();
    assert_eq!(run(&agg(AggFunc::Sum, "n")), Some(sum as f64));
    assert_eq!(run(&agg(AggFunc::Avg, "n")), Some(sum as f64 / all.len() as f64));
    assert_eq!(run(&agg(AggFunc::Max, "o")), all.iter().filter_map(|r| r.o).max().map(|m| m as f64));
    let empty = cmp(f("n"), CmpOp::Gt, lit(1_000_000));
    let q = sql::aggregate(Dialect::Sqlite, &schema, Some(&empty), &agg(AggFunc::Avg, "n"), &none).expect("agg");
    assert_eq!(
        conn.query_row(&q.text, rusqlite::params_from_iter(q.params.iter().map(sqlite_value)), |r| r
            .get::<_, Option<f64>>(0))
            .expect("runs"),
        None
    );

    // Index nodes: equality, NULL and prefix (first 2 characters, Unicode-aware).
    let node = |index: usize, values: &[Value]| -> Vec<i64> {
        let mut ids = run_ids(&conn, &sql::node_keys(Dialect::Sqlite, &schema, index, values));
        ids.sort_unstable();
        ids
    };
    let ids = |pred: &dyn Fn(&Row) -> bool| -> Vec<i64> { all.iter().filter(|r| pred(r)).map(|r| r.id).collect() };
    assert_eq!(node(0, &[Value::Int(-8)]), ids(&|r| r.n == -8));
    assert_eq!(node(2, &[Value::Null]), ids(&|r| r.o.is_none()));
    assert_eq!(node(1, &[Value::from("Är")]), ids(&|r| r.name.chars().take(2).collect::<String>() == "Är"));
    assert_eq!(node(1, &[Value::from("a_")]), ids(&|r| r.name.chars().take(2).collect::<String>() == "a_"));

    let keys = [Value::Int(3), Value::Int(1), Value::Int(77)];
    let mut got = run_ids(&conn, &sql::rows_by_keys(Dialect::Sqlite, &schema, &keys));
    got.sort_unstable();
    assert_eq!(got, vec![1, 3]);
    assert!(run_ids(&conn, &sql::rows_by_keys(Dialect::Sqlite, &schema, &[])).is_empty());

    // Writes: update, delete, delete_where.
    let exec = |q: &sql::SqlQuery| -> usize {
        conn.execute(&q.text, rusqlite::params_from_iter(q.params.iter().map(sqlite_value))).expect("write runs")
    };
    let mut changed = to_values(&all[0]);
    changed[1] = Value::from("it's \"new\"");
    assert_eq!(exec(&sql::update(Dialect::Sqlite, &schema, &changed)), 1);
    let name: String = conn.query_row("SELECT name FROM item WHERE id = 1", [], |r| r.get(0)).expect("row 1");
    assert_eq!(name, "it's \"new\"");
    assert_eq!(exec(&sql::delete(Dialect::Sqlite, &schema, &Value::Int(2))), 1);
    let q = sql::delete_where(Dialect::Sqlite, &schema, &st(f("name"), StrOp::StartsWith, "a"), &none).expect("delete");
    let deleted = exec(&q);
    assert_eq!(deleted, all.iter().filter(|r| r.id != 1 && r.id != 2 && r.name.starts_with('a')).count());
}

/// The text form end to end: parse, check, emit for SQLite, run. The rows must
/// equal both the Rust closure's and the in-memory predicate's (`eval::matches`),
/// so the database path and the cached path agree.
#[test]
fn text_form_agrees_with_rust_and_eval() {
    type TextCase = (&'static str, Vec<Binding>, fn(&Row) -> bool);
    let cases: Vec<TextCase> = vec![
        ("lambda c: c.name.startswith('a_')", vec![], |r| r.name.starts_with("a_")),
        ("lambda c: '%' in c.name or c.name.endswith(']')", vec![], |r| r.name.contains('%') || r.name.ends_with(']')),
        ("lambda c: c.name.startswith(q.lower())", vec![("q", Value::from("ÄR"))], |r| r.name.starts_with("är")),
        ("lambda c: not c.name.startswith(x)", vec![("x", Value::from("a*"))], |r| !r.name.starts_with("a*")),
        ("lambda c: c.o != 2 and c.o is not None", vec![], |r| r.o != Some(2) && r.o.is_some()),
        ("lambda c: c.o == v", vec![("v", Value::Null)], |r| r.o.is_none()),
        ("lambda c: c.note == ''", vec![], |r| r.note.as_deref() == Some("")),
        ("lambda c: c.n in ids", vec![("ids", Value::from(vec![-20, -17, 43]))], |r| [-20, -17, 43].contains(&r.n)),
        ("lambda c: not (c.id in ids)", vec![("ids", Value::List(vec![]))], |_| true),
        ("lambda c: c.x > 1", vec![], |r| r.x > 1.0),
        ("lambda c: c.x == 0", vec![], |r| r.x == 0.0),
        ("lambda c: len(c.name) > 5 and c.name < 'b'", vec![], |r| r.name.len() > 5 && r.name.as_str() < "b"),
        ("lambda c: ieq(c.name, 'APPLE') or c.name.lower() == 'straße'", vec![], |r| {
            r.name.eq_ignore_ascii_case("APPLE") || r.name.to_lowercase() == "straße"
        }),
        ("lambda c: c.n % 4 == -3 or c.n / 5 == 2", vec![], |r| r.n % 4 == -3 || r.n / 5 == 2),
        ("lambda c: c.name == evil", vec![("evil", Value::from("'; DROP TABLE item; --"))], |r| {
            r.name == "'; DROP TABLE item; --"
        }),
    ];
    let conn = database();
    let schema = schema();
    let all = rows();
    for (source, params, expect) in &cases {
        let params = bound(params);
        let lambda = memdex_grammar::text::parse(source).unwrap_or_else(|e| panic!("{source}: {}", e.render(source)));
        let filter = memdex_grammar::check::filter(&schema, &lambda.body, &memdex_grammar::params::types_of(&params))
            .unwrap_or_else(|e| panic!("{source}: {}", e.render(source)));
        let q =
            sql::select(Dialect::Sqlite, &schema, SelectSpec { filter: Some(&filter), ..Default::default() }, &params)
                .unwrap_or_else(|e| panic!("{source}: {e}"));
        let mut got = run_ids(&conn, &q);
        got.sort_unstable();
        let want: Vec<i64> = all.iter().filter(|r| expect(r)).map(|r| r.id).collect();
        assert_eq!(got, want, "SQL vs Rust: {source}\n{}", q.text);
        let evaluated: Vec<i64> = all
            .iter()
            .filter(|r| {
                let values = to_values(r);
                memdex_grammar::eval::matches(&schema, &filter, &|i| values[i].clone(), &params)
            })
            .map(|r| r.id)
            .collect();
        assert_eq!(evaluated, want, "eval vs Rust: {source}");
    }
}
