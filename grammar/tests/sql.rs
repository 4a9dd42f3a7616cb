//! SQL emitted for every row of the language table, paging, aggregates, index node
//! lookups, writes and DDL, in all three dialects (insta snapshots of the text and
//! the bound values). The IR is built by hand with the small builder below, so
//! these tests depend on nothing but the emitter.

use memdex_grammar::check::Aggregate;
use memdex_grammar::ir::{AggFunc, ArithOp, CmpOp, Expr, ExprKind, Haystack, StrOp};
use memdex_grammar::keys::{KeyPart, NodeSpelling};
use memdex_grammar::sql::{self, Dialect, OrderBy, SelectSpec, SqlError, SqlQuery};
use memdex_grammar::{Schema, Span, Type, Value};

const DIALECTS: [Dialect; 3] = [Dialect::Sqlite, Dialect::Postgres, Dialect::MySql];

/// `item`: a keyword column (`order`), a nullable int, a prefix index and a
/// composite index.
fn schema() -> Schema {
    Schema::new("Item", "item")
        .column("id", Type::Int, false)
        .column("category_id", Type::Int, false)
        .column("first_name", Type::Text, false)
        .column("price", Type::Float, false)
        .column("deleted_at", Type::Int, true)
        .column("order", Type::Text, true)
        .column("cart_id", Type::Int, false)
        .column("status", Type::Text, false)
        .column("active", Type::Bool, false)
        .key("id")
        .index(&["category_id"], None)
        .index(&["first_name"], Some(1))
        .index(&["cart_id", "status"], None)
        .index(&["deleted_at"], None)
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
fn none() -> Expr {
    Expr::lit(Value::Null, Span::DUMMY)
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
fn neg(x: Expr) -> Expr {
    e(ExprKind::Neg(Box::new(x)))
}
fn arith(a: Expr, op: ArithOp, b: Expr) -> Expr {
    e(ExprKind::Arith { op, lhs: Box::new(a), rhs: Box::new(b) })
}
fn st(subject: Expr, op: StrOp, pattern: Expr) -> Expr {
    e(ExprKind::StrTest { op, subject: Box::new(subject), pattern: Box::new(pattern) })
}
fn lower(x: Expr) -> Expr {
    e(ExprKind::Lower(Box::new(x)))
}
fn ieq(a: Expr, b: Expr) -> Expr {
    e(ExprKind::IEq(Box::new(a), Box::new(b)))
}
fn len(x: Expr) -> Expr {
    e(ExprKind::Len(Box::new(x)))
}
fn in_items(needle: Expr, items: Vec<Expr>) -> Expr {
    e(ExprKind::In { needle: Box::new(needle), haystack: Haystack::Items(items) })
}
fn in_param(needle: Expr, name: &str) -> Expr {
    e(ExprKind::In { needle: Box::new(needle), haystack: Haystack::Param(name.into()) })
}
fn is_null(x: Expr, negated: bool) -> Expr {
    e(ExprKind::IsNull { expr: Box::new(x), negated })
}

// --- rendering --------------------------------------------------------------------

/// One block per dialect: the SQL text, then the bound values in order.
fn render(each: impl Fn(Dialect) -> Result<SqlQuery, SqlError>) -> String {
    let mut out = String::new();
    for d in DIALECTS {
        match each(d) {
            Ok(q) => out.push_str(&format!("{d:?}:\n  {}\n  params: {:?}\n", q.text, q.params)),
            Err(err) => out.push_str(&format!("{d:?}: error: {err}\n")),
        }
    }
    out
}

type Binding = (&'static str, Value);

/// Named values as the emitter reads them (`Params` is implemented for owned pairs).
fn bound(params: &[Binding]) -> Vec<(String, Value)> {
    params.iter().map(|(n, v)| ((*n).to_owned(), v.clone())).collect()
}

/// The filter `expr` with `params`, as `SELECT … WHERE` in every dialect.
fn check(name: &str, expr: Expr, params: &[Binding]) {
    let schema = schema();
    let out =
        render(|d| sql::select(d, &schema, SelectSpec { filter: Some(&expr), ..Default::default() }, &bound(params)));
    insta::assert_snapshot!(name, out);
}

#[test]
fn language_table() {
    use CmpOp::*;
    let cases: Vec<(&str, Expr, Vec<Binding>)> = vec![
        ("eq_int", cmp(f("category_id"), Eq, p("cat")), vec![("cat", Value::Int(5))]),
        ("ne_int", cmp(f("category_id"), Ne, lit(5)), vec![]),
        ("lt_float", cmp(f("price"), Lt, lit(10.5)), vec![]),
        (
            "le_ge_gt",
            and(vec![cmp(f("price"), Le, lit(1.0)), cmp(f("cart_id"), Ge, lit(2)), cmp(f("id"), Gt, lit(3))]),
            vec![],
        ),
        ("eq_text_bytewise", cmp(f("status"), Eq, lit("Open")), vec![]),
        ("lt_text_bytewise", cmp(f("status"), Lt, lit("m")), vec![]),
        ("gt_text_value_on_left", cmp(lit("m"), Gt, f("status")), vec![]),
        ("nullable_eq", cmp(f("deleted_at"), Eq, p("d")), vec![("d", Value::Int(7))]),
        ("nullable_ne", cmp(f("deleted_at"), Ne, lit(5)), vec![]),
        ("nullable_text_eq", cmp(f("order"), Eq, lit("x")), vec![]),
        ("eq_none_literal", cmp(f("deleted_at"), Eq, none()), vec![]),
        ("ne_none_param", cmp(f("deleted_at"), Ne, p("d")), vec![("d", Value::Null)]),
        ("is_none", is_null(f("deleted_at"), false), vec![]),
        ("is_some", is_null(f("deleted_at"), true), vec![]),
        (
            "and_or_not",
            and(vec![
                or(vec![cmp(f("category_id"), Eq, lit(1)), cmp(f("category_id"), Eq, lit(2))]),
                not(cmp(f("price"), Gt, lit(3.0))),
            ]),
            vec![],
        ),
        ("or_of_ands", or(vec![and(vec![cmp(f("id"), Eq, lit(1)), f("active")]), not(f("active"))]), vec![]),
        ("starts_with", st(f("first_name"), StrOp::StartsWith, p("x")), vec![("x", Value::from("a_%!*?[\\"))]),
        ("ends_with", st(f("first_name"), StrOp::EndsWith, lit("son")), vec![]),
        ("contains", st(f("first_name"), StrOp::Contains, lit("50%")), vec![]),
        ("contains_on_lower", st(lower(f("first_name")), StrOp::Contains, lit("ä")), vec![]),
        ("to_lowercase", cmp(lower(f("first_name")), Eq, lit("ärger")), vec![]),
        ("eq_ignore_ascii_case", ieq(f("first_name"), p("n")), vec![("n", Value::from("BOB"))]),
        ("in_literal_items", in_items(f("category_id"), vec![lit(1), lit(2)]), vec![]),
        ("in_items_with_param", in_items(f("status"), vec![lit("a"), p("s")]), vec![("s", Value::from("b"))]),
        ("in_list_param", in_param(f("id"), "ids"), vec![("ids", Value::from(vec![3, 1, 4]))]),
        ("in_empty_list", in_param(f("id"), "ids"), vec![("ids", Value::List(vec![]))]),
        ("not_in_empty_list", not(in_param(f("id"), "ids")), vec![("ids", Value::List(vec![]))]),
        ("in_drops_none_items", in_items(f("category_id"), vec![lit(1), none()]), vec![]),
        ("in_nullable_needle", in_items(f("deleted_at"), vec![lit(1), none()]), vec![]),
        ("in_not_a_list", in_param(f("id"), "ids"), vec![("ids", Value::Int(3))]),
        ("unbound_param", cmp(f("id"), Eq, p("missing")), vec![]),
        (
            "arithmetic",
            cmp(
                arith(arith(f("price"), ArithOp::Mul, lit(2.0)), ArithOp::Add, neg(f("price"))),
                Gt,
                arith(lit(1.0), ArithOp::Sub, p("k")),
            ),
            vec![("k", Value::Float(0.5))],
        ),
        ("int_div_literal", cmp(arith(f("cart_id"), ArithOp::Div, lit(2)), Eq, lit(3)), vec![]),
        ("int_div_column", cmp(arith(f("cart_id"), ArithOp::Div, f("category_id")), Eq, lit(3)), vec![]),
        ("int_rem_column", not(cmp(arith(f("cart_id"), ArithOp::Rem, f("category_id")), Eq, lit(1))), vec![]),
        ("float_rem_unsupported", cmp(arith(f("price"), ArithOp::Rem, lit(2.0)), Eq, lit(1.0)), vec![]),
        ("int_add_checked", cmp(arith(f("cart_id"), ArithOp::Add, lit(1)), Gt, lit(0)), vec![]),
        ("int_sub_checked", cmp(arith(lit(1), ArithOp::Sub, f("cart_id")), Gt, lit(0)), vec![]),
        (
            "int_mul_checked",
            cmp(arith(f("cart_id"), ArithOp::Mul, f("category_id")), Lt, p("k")),
            vec![("k", Value::Int(1 << 40))],
        ),
        ("int_neg_checked", not(cmp(neg(f("cart_id")), Ge, lit(0))), vec![]),
        ("int_div_by_minus_one", cmp(arith(f("cart_id"), ArithOp::Div, lit(-1)), Gt, lit(0)), vec![]),
        (
            "float_div_checked",
            cmp(arith(f("price"), ArithOp::Div, p("d")), Le, lit(1.0)),
            vec![("d", Value::Float(0.5))],
        ),
        ("float_neg_checked", cmp(neg(arith(f("price"), ArithOp::Add, lit(1.0))), Lt, lit(0.0)), vec![]),
        ("params_alone_typed", cmp(p("a"), Gt, p("b")), vec![("a", Value::Int(1)), ("b", Value::Int(1 << 40))]),
        ("neg_param_typed", cmp(f("cart_id"), Gt, neg(p("k"))), vec![("k", Value::Int(5))]),
        ("len_bytes", cmp(len(f("first_name")), Ge, lit(3)), vec![]),
        ("bool_column", f("active"), vec![]),
        ("bool_eq_param", cmp(f("active"), Eq, p("b")), vec![("b", Value::Bool(false))]),
    ];
    for (name, expr, params) in cases {
        check(name, expr, &params);
    }
}

/// Every copy of an operand a check repeats is a fresh placeholder, emitted in the
/// order the SQL text reads: PostgreSQL's `$n` then appear as 1, 2, 3, …, and the
/// positional `?` of SQLite and MySQL (built by the same code) bind in text order.
#[test]
fn placeholders_are_numbered_in_text_order() {
    let schema = schema();
    let filters = [
        cmp(arith(arith(f("cart_id"), ArithOp::Mul, p("k")), ArithOp::Add, lit(1)), CmpOp::Gt, neg(p("k"))),
        cmp(arith(arith(f("price"), ArithOp::Mul, lit(0.5)), ArithOp::Div, p("x")), CmpOp::Lt, neg(p("x"))),
        not(cmp(arith(lit(7), ArithOp::Rem, arith(f("category_id"), ArithOp::Sub, p("k"))), CmpOp::Eq, lit(1))),
    ];
    let params = bound(&[("k", Value::Int(3)), ("x", Value::Float(2.0))]);
    for filter in &filters {
        let q =
            sql::select(Dialect::Postgres, &schema, SelectSpec { filter: Some(filter), ..Default::default() }, &params)
                .expect("emits");
        let numbers: Vec<usize> = q
            .text
            .split('$')
            .skip(1)
            .map(|rest| rest.chars().take_while(char::is_ascii_digit).collect::<String>().parse().expect("a number"))
            .collect();
        assert!(numbers.len() > 3, "checks repeat operands: {}", q.text);
        assert_eq!(numbers, (1..=numbers.len()).collect::<Vec<_>>(), "{}", q.text);
        assert_eq!(numbers.len(), q.params.len());
        let sqlite =
            sql::select(Dialect::Sqlite, &schema, SelectSpec { filter: Some(filter), ..Default::default() }, &params)
                .expect("emits");
        let mysql =
            sql::select(Dialect::MySql, &schema, SelectSpec { filter: Some(filter), ..Default::default() }, &params)
                .expect("emits");
        for q in [sqlite, mysql] {
            assert_eq!(q.text.matches('?').count(), q.params.len(), "{}", q.text);
        }
    }
}

/// Checks repeat operands, so SQL grows with nesting; past a budget the emitter
/// refuses (an error, not megabytes of SQL or a hang).
#[test]
fn deeply_nested_arithmetic_is_refused_not_exploded() {
    let schema = schema();
    let mut e = f("price");
    for _ in 0..40 {
        e = arith(e, ArithOp::Mul, f("price"));
    }
    let filter = cmp(e, CmpOp::Gt, lit(0.0));
    let started = std::time::Instant::now();
    let got = sql::select(
        Dialect::Postgres,
        &schema,
        SelectSpec { filter: Some(&filter), ..Default::default() },
        &bound(&[]),
    );
    assert!(matches!(got, Err(SqlError::Unsupported(ref m)) if m.contains("too large")), "{got:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // A sum of 40 terms is fine (quadratic growth).
    let mut sum = f("cart_id");
    for _ in 0..40 {
        sum = arith(sum, ArithOp::Add, f("cart_id"));
    }
    let filter = cmp(sum, CmpOp::Gt, lit(0));
    let q =
        sql::select(Dialect::Sqlite, &schema, SelectSpec { filter: Some(&filter), ..Default::default() }, &bound(&[]));
    assert!(q.is_ok(), "{q:?}");
}

#[test]
fn order_limit_offset() {
    let schema = schema();
    let filter = cmp(f("category_id"), CmpOp::Eq, lit(5));
    type Page = (&'static str, Vec<OrderBy>, Option<u64>, Option<u64>);
    let cases: Vec<Page> = vec![
        ("order_desc_limit_offset", vec![OrderBy { column: 3, desc: true }], Some(10), Some(30)),
        (
            "order_nullable_asc_and_desc",
            vec![OrderBy { column: 4, desc: false }, OrderBy { column: 5, desc: true }],
            None,
            None,
        ),
        ("order_text_bytewise", vec![OrderBy { column: 2, desc: false }], Some(5), None),
        ("offset_only", vec![], None, Some(7)),
        ("order_by_key_no_tiebreak", vec![OrderBy { column: 0, desc: true }], Some(1), None),
    ];
    for (name, order, limit, offset) in cases {
        let out = render(|d| {
            sql::select(d, &schema, SelectSpec { filter: Some(&filter), order: &order, limit, offset }, &bound(&[]))
        });
        insta::assert_snapshot!(name, out);
    }
    let out = render(|d| sql::select(d, &schema, SelectSpec::default(), &bound(&[])));
    insta::assert_snapshot!("select_all", out);
}

#[test]
fn count_and_aggregates() {
    let schema = schema();
    let filter = cmp(f("category_id"), CmpOp::Eq, p("cat"));
    let params: [Binding; 2] = [("cat", Value::Int(5)), ("k", Value::Float(2.0))];
    insta::assert_snapshot!("count_filtered", render(|d| sql::count(d, &schema, Some(&filter), &bound(&params))));
    insta::assert_snapshot!("count_all", render(|d| sql::count(d, &schema, None, &bound(&params))));
    let aggs = [
        ("agg_count", AggFunc::Count, None, None),
        ("agg_sum", AggFunc::Sum, Some(f("cart_id")), Some(Type::Int)),
        ("agg_avg_expr_with_param", AggFunc::Avg, Some(arith(f("price"), ArithOp::Mul, p("k"))), Some(Type::Float)),
        ("agg_min", AggFunc::Min, Some(f("price")), Some(Type::Float)),
        ("agg_max", AggFunc::Max, Some(f("deleted_at")), Some(Type::Int)),
    ];
    for (name, func, arg, arg_type) in aggs {
        let agg = Aggregate { func, arg, span: Span::DUMMY, arg_type };
        insta::assert_snapshot!(name, render(|d| sql::aggregate(d, &schema, Some(&filter), &agg, &bound(&params))));
    }
}

#[test]
fn node_keys_and_rows_by_keys() {
    let schema = schema();
    let cases: Vec<(&str, usize, Vec<Value>)> = vec![
        ("node_single", 0, vec![Value::Int(5)]),
        ("node_prefix", 1, vec![Value::from("m")]),
        ("node_composite", 2, vec![Value::Int(9), Value::from("open")]),
        ("node_is_null", 3, vec![Value::Null]),
        ("node_bad_index", 9, vec![Value::Int(1)]),
    ];
    for (name, index, values) in cases {
        insta::assert_snapshot!(name, render(|d| Ok(sql::node_keys(d, &schema, index, &values))));
    }
    let keys = [Value::Int(1), Value::Int(2), Value::Int(3)];
    insta::assert_snapshot!("rows_by_keys", render(|d| Ok(sql::rows_by_keys(d, &schema, &keys))));
    insta::assert_snapshot!("rows_by_no_keys", render(|d| Ok(sql::rows_by_keys(d, &schema, &[]))));
}

/// An insert (and a delete by keys) and a read of another table in one statement
/// where the dialect runs data-modifying statements in a `WITH` (PostgreSQL), and
/// nowhere else; the read's values bound after the write's, and the statement one
/// PostgreSQL's grammar accepts.
#[test]
fn insert_then_select_in_one_statement() {
    let schema = schema();
    let registry = Schema::new("Reg", "memdex_indexes")
        .column("id", Type::Int, false)
        .column("table_name", Type::Text, false)
        .key("id");
    let filter = in_param(f("table_name"), "tables");
    let params = bound(&[("tables", Value::List(vec![Value::from("item"), Value::from("tag")]))]);
    for (name, keys) in [("insert_then_select", vec![]), ("insert_delete_then_select", vec![Value::Int(7)])] {
        let out = render(|d| {
            Ok(match sql::insert_then_select(d, &schema, &row(), &keys, (&registry, &filter, &params))? {
                Some(q) => q,
                None => SqlQuery { text: "(two statements)".into(), params: Vec::new() },
            })
        });
        insta::assert_snapshot!(name, out);
        let pg = sql::insert_then_select(Dialect::Postgres, &schema, &row(), &keys, (&registry, &filter, &params));
        let pg = pg.expect("emits").expect("one");
        let parsed = sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::PostgreSqlDialect {}, &pg.text);
        assert!(parsed.is_ok(), "{}: {parsed:?}", pg.text);
    }
}

/// An update and a delete guarded by their indexed columns and the index registry,
/// and an insert guarded by the registry, each writing its outbox entry (and deleting done ones)
/// in the same statement, where the dialect runs writes in a `WITH` (PostgreSQL)
/// and nowhere else; the statement one PostgreSQL's grammar accepts, its values
/// bound in the order its params list.
#[test]
fn guarded_writes_with_their_entry_in_one_statement() {
    let schema = schema();
    let (registry, outbox) = (registry_schema(), outbox_schema());
    let row = row();
    let known = ["category_id/0".to_owned(), "title/1".to_owned()];
    let entry = [Value::Int(42), Value::from("k1 k2"), Value::Int(1_700_000), Value::Null];
    let update = sql::RowChange::Update { unchanged: &[1, 2] };
    // The row as read before a move: other values in the guarded columns.
    let mut was = row.clone();
    (was[1], was[2]) = (Value::Int(6), Value::from("was"));
    // The nodes a write that reads the row names in its entry: one of one column,
    // one of two with text after the last.
    let column = |column| KeyPart::Column { column, prefix: None };
    let old_nodes = [
        NodeSpelling { parts: vec![KeyPart::Text("ns:item:0:category_id=".into()), column(1)], may_be_long: false },
        NodeSpelling {
            parts: vec![
                KeyPart::Text("ns:item:0:cart_id=".into()),
                column(6),
                KeyPart::Text("&active=".into()),
                column(8),
                KeyPart::Text(">order".into()),
            ],
            may_be_long: false,
        },
        NodeSpelling {
            parts: vec![
                KeyPart::Text("ns:item:0:first_name[:2]=".into()),
                KeyPart::Column { column: 2, prefix: Some(2) },
            ],
            may_be_long: true,
        },
    ];
    let cases = [
        ("guarded_update_with_entry", update, vec![]),
        ("guarded_update_forgetting", update, vec![Value::Int(7)]),
        ("guarded_insert_forgetting", sql::RowChange::Insert, vec![Value::Int(7)]),
        ("guarded_delete_forgetting", sql::RowChange::Delete { unchanged: &[1, 2] }, vec![Value::Int(7)]),
        ("guarded_move_forgetting", sql::RowChange::Move { unchanged: &[1, 2], was: &was }, vec![Value::Int(7)]),
        ("reading_update_forgetting", sql::RowChange::UpdateReading { old_nodes: &old_nodes }, vec![Value::Int(7)]),
        ("reading_delete", sql::RowChange::DeleteReading { old_nodes: &old_nodes }, vec![]),
    ];
    for (name, change, forget) in cases {
        let write = sql::GuardedWrite {
            schema: &schema,
            row: &row,
            change,
            registry: &registry,
            known: &known,
            outbox: &outbox,
            entry: &entry,
            forget: &forget,
        };
        let out = render(|d| {
            Ok(sql::guarded_write_with_entry(d, &write)
                .unwrap_or_else(|| SqlQuery { text: "(a transaction)".into(), params: Vec::new() }))
        });
        insta::assert_snapshot!(name, out);
        let pg = sql::guarded_write_with_entry(Dialect::Postgres, &write).expect("one statement");
        assert_eq!(pg.params, sql::guarded_write_params(&write), "{}", pg.text);
        let parsed = sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::PostgreSqlDialect {}, &pg.text);
        assert!(parsed.is_ok(), "{}: {parsed:?}", pg.text);
    }
}

fn registry_schema() -> Schema {
    Schema::new("Reg", "memdex_indexes")
        .column("id", Type::Text, false)
        .column("table_name", Type::Text, false)
        .column("definition", Type::Text, false)
        .key("id")
}

fn outbox_schema() -> Schema {
    Schema::new("Outbox", "memdex_outbox")
        .column("id", Type::Int, false)
        .column("keys", Type::Text, false)
        .column("created_at", Type::Int, false)
        .column("moved", Type::Text, true)
        .key("id")
}

fn row() -> Vec<Value> {
    vec![
        Value::Int(1),
        Value::Int(5),
        Value::from("'; DROP TABLE item; --"),
        Value::Float(9.5),
        Value::Null,
        Value::from("o"),
        Value::Int(3),
        Value::from("open"),
        Value::Bool(true),
    ]
}

#[test]
fn writes() {
    let schema = schema();
    let row = row();
    insta::assert_snapshot!("insert", render(|d| Ok(sql::insert(d, &schema, &row))));
    insta::assert_snapshot!("update", render(|d| Ok(sql::update(d, &schema, &row))));
    insta::assert_snapshot!("delete", render(|d| Ok(sql::delete(d, &schema, &Value::Int(1)))));
    // A write that reads the row it changes in the same statement, where the dialect
    // can (PostgreSQL); elsewhere there is none, and the write reads it first.
    let or_none = |q: Option<SqlQuery>| q.ok_or(SqlError::Unsupported("none".into()));
    insta::assert_snapshot!("update_returning_old", render(|d| or_none(sql::update_returning_old(d, &schema, &row))));
    insta::assert_snapshot!(
        "delete_returning_old",
        render(|d| or_none(sql::delete_returning_old(d, &schema, &Value::Int(1))))
    );
    let filter = and(vec![cmp(f("category_id"), CmpOp::Eq, p("cat")), is_null(f("deleted_at"), true)]);
    let params: [Binding; 1] = [("cat", Value::Int(4))];
    insta::assert_snapshot!("delete_where", render(|d| sql::delete_where(d, &schema, &filter, &bound(&params))));
}

#[test]
fn ddl() {
    let schema = schema();
    let out: String =
        DIALECTS.iter().map(|&d| format!("{d:?}:\n{}\n", sql::create_table(d, &schema).join(";\n"))).collect();
    insta::assert_snapshot!("create_table", out);
    // A text key: MySQL needs a VARCHAR there. An optional text column with its own
    // index: a hash index on PostgreSQL, and a partial index for its `None` node.
    let text_key = Schema::new("User", "user")
        .column("name", Type::Text, false)
        .column("bio", Type::Text, true)
        .key("name")
        .index(&["bio"], None);
    let out: String =
        DIALECTS.iter().map(|&d| format!("{d:?}:\n{}\n", sql::create_table(d, &text_key).join(";\n"))).collect();
    insta::assert_snapshot!("create_table_text_key", out);
    // Ordered indexes: the database's index adds the order column (in the declared
    // direction), so a page of the node is an index range there too.
    let lines = Schema::new("CartLine", "cart_line")
        .column("id", Type::Int, false)
        .column("cart_id", Type::Int, false)
        .column("position", Type::Int, false)
        .column("label", Type::Text, false)
        .key("id")
        .ordered_index(&["cart_id"], "position", false)
        .ordered_index(&["label"], "position", true);
    let out: String =
        DIALECTS.iter().map(|&d| format!("{d:?}:\n{}\n", sql::create_table(d, &lines).join(";\n"))).collect();
    insta::assert_snapshot!("create_table_ordered", out);
}

#[test]
fn lower_function_names() {
    let names: Vec<_> = DIALECTS.iter().map(|d| d.lower_function()).collect();
    assert_eq!(names, ["memdex_lower", "LOWER", "LOWER"]);
}

/// Every emitted statement parses back with sqlparser's own dialect parser: the
/// AST we built is one the database's grammar accepts (as far as sqlparser knows).
#[test]
fn emitted_sql_parses_in_its_dialect() {
    use sqlparser::dialect::{MySqlDialect, PostgreSqlDialect};
    use sqlparser::parser::Parser;
    let schema = schema();
    let filter = and(vec![
        cmp(f("deleted_at"), CmpOp::Ne, lit(5)),
        st(f("first_name"), StrOp::StartsWith, lit("a")),
        cmp(f("status"), CmpOp::Lt, lit("m")),
        in_param(f("id"), "ids"),
        ieq(f("first_name"), lit("x")),
        cmp(len(f("first_name")), CmpOp::Gt, lit(1)),
    ]);
    let params: [Binding; 1] = [("ids", Value::from(vec![1, 2]))];
    for d in DIALECTS {
        let order = [OrderBy { column: 5, desc: false }];
        let spec = SelectSpec { filter: Some(&filter), order: &order, limit: Some(3), offset: Some(1) };
        let mut texts = vec![sql::select(d, &schema, spec, &bound(&params)).expect("all params bound").text];
        texts.extend(sql::create_table(d, &schema));
        texts.push(sql::insert(d, &schema, &row()).text);
        texts.push(sql::update(d, &schema, &row()).text);
        for text in texts {
            // sqlparser's SQLite dialect does not know `GLOB`, and `IS` between two
            // expressions: those are checked by executing them (sql_sqlite_exec.rs).
            let parsed = match d {
                Dialect::Sqlite => continue,
                Dialect::Postgres => Parser::parse_sql(&PostgreSqlDialect {}, &text),
                Dialect::MySql => Parser::parse_sql(&MySqlDialect {}, &text),
            };
            assert!(parsed.is_ok(), "{d:?} does not parse: {text}\n{parsed:?}");
        }
    }
}

/// The text form through the parser and checker, as the runtime runs it: the
/// checker's rewrites (an int literal against a float column, `x in p` with a
/// string `p`) reach the SQL.
#[test]
fn text_form() {
    let schema = schema();
    let cases: Vec<(&str, &str, Vec<Binding>)> = vec![
        ("text_int_literal_vs_float", "lambda c: c.price > 10 and c.category_id == cat", vec![("cat", Value::Int(5))]),
        ("text_substring_param", "lambda c: needle in c.first_name", vec![("needle", Value::from("_x"))]),
        (
            "text_startswith_lower",
            "lambda c: c.first_name.lower().startswith(q.lower())",
            vec![("q", Value::from("ÄB"))],
        ),
        (
            "text_shop_query",
            "lambda c: c.category_id in (2, 5) and not c.first_name.startswith('m') or c.deleted_at is None",
            vec![],
        ),
        ("text_option_ne", "lambda c: c.order != 'x' and ieq(c.status, s)", vec![("s", Value::from("OPEN"))]),
    ];
    for (name, source, params) in cases {
        let params = bound(&params);
        let lambda = memdex_grammar::text::parse(source).expect("parses");
        let filter = memdex_grammar::check::filter(&schema, &lambda.body, &memdex_grammar::params::types_of(&params))
            .expect("checks");
        let out =
            render(|d| sql::select(d, &schema, SelectSpec { filter: Some(&filter), ..Default::default() }, &params));
        insta::assert_snapshot!(name, format!("{source}\n{out}"));
    }
}

/// `in` lists longer than 100 values bind as ONE parameter (PostgreSQL `= ANY($n)`,
/// SQLite `IN (SELECT "value" FROM json_each(?))`, MySQL `IN (SELECT `v` FROM
/// JSON_TABLE(?, …))` with the needle's type). NULLs leave the bound
/// list; an `Option` needle says through `COALESCE` whether the list held `None`.
#[test]
fn long_in_lists_bind_as_one_parameter() {
    let ints = |n: i64| Value::List((0..n).map(Value::Int).collect());
    let mut texts: Vec<Value> = (0..101).map(|i| Value::Text(format!("s{i}"))).collect();
    texts.push(Value::Null);
    let mut nullable: Vec<Value> = (0..101).map(Value::Int).collect();
    check("in_long_list_param", in_param(f("category_id"), "ids"), &[("ids", ints(101))]);
    check("in_long_text_list_drops_none", in_param(f("status"), "ss"), &[("ss", Value::List(texts))]);
    check("in_long_list_negated", not(in_param(f("cart_id"), "ids")), &[("ids", ints(101))]);
    check("in_long_list_nullable_needle", in_param(f("deleted_at"), "ds"), &[("ds", Value::List(nullable.clone()))]);
    nullable.insert(50, Value::Null);
    check("in_long_list_nullable_needle_with_none", in_param(f("deleted_at"), "ds"), &[("ds", Value::List(nullable))]);

    // At 100 values the list keeps a placeholder per element, in every dialect.
    let schema = schema();
    for (n, want) in [(100, 100), (101, 1)] {
        let filter = in_param(f("category_id"), "ids");
        let params = bound(&[("ids", ints(n))]);
        for d in [Dialect::Sqlite, Dialect::Postgres, Dialect::MySql] {
            let q = sql::select(d, &schema, SelectSpec { filter: Some(&filter), ..Default::default() }, &params)
                .expect("all params bound");
            assert_eq!(q.params.len(), want, "{d:?} with {n} values: {}", q.text);
        }
    }
}

/// The statements of memdex's index registry (`memdex_indexes`, built by the
/// runtime's `registry` module over a schema of this shape): its table, a writer's
/// lookup of the tables it wrote, a registration's insert, and the locks a
/// registration takes first and, on MySQL, releases last.
#[test]
fn index_registry() {
    let registry = Schema::new("MemdexIndexes", "memdex_indexes")
        .column("id", Type::Text, false)
        .column("table_name", Type::Text, false)
        .column("definition", Type::Text, false)
        .column("created_at", Type::Int, false)
        .key("id");
    let out: String =
        DIALECTS.iter().map(|&d| format!("{d:?}:\n{}\n", sql::create_table(d, &registry).join(";\n"))).collect();
    insta::assert_snapshot!("registry_create_table", out);
    let filter = Expr::new(
        ExprKind::In { needle: Box::new(f("table_name")), haystack: Haystack::Param("tables".into()) },
        Span::DUMMY,
    );
    let params: [Binding; 1] = [("tables", Value::List(vec![Value::from("item"), Value::from("cart")]))];
    let spec = SelectSpec { filter: Some(&filter), ..SelectSpec::default() };
    insta::assert_snapshot!("registry_lookup", render(|d| sql::select(d, &registry, spec, &bound(&params))));
    let row =
        [Value::from("item\nname[:3]"), Value::from("item"), Value::from("name[:3]"), Value::Int(1_700_000_000_000)];
    insta::assert_snapshot!("registry_insert", render(|d| Ok(sql::insert_or_keep(d, &registry, &row))));
    let item = schema();
    let out: String = DIALECTS
        .iter()
        .map(|&d| {
            let lock: Vec<String> =
                sql::lock_for_registration(d, &item, &registry).into_iter().map(|q| q.text).collect();
            let hold: Vec<String> = sql::hold_for_registration(d, &item).into_iter().map(|q| q.text).collect();
            let unlock = sql::unlock_after_registration(d).map(|q| q.text);
            format!("{d:?}:\n  hold: {hold:?}\n  lock: {lock:?}\n  unlock: {unlock:?}\n")
        })
        .collect();
    insta::assert_snapshot!("registry_locks", out);
}

/// The write path keeps the text of a statement per shape and binds only the next
/// row's values (the runtime's `statements` module): so each write statement's
/// text must not depend on the values, and its `*_params` function must list the
/// values exactly as the statement binds them. Checked for rows with and without
/// NULLs, on a schema whose key is not its first column.
#[test]
fn write_statement_texts_depend_on_their_shape_alone() {
    let key_last =
        Schema::new("Tag", "tag").column("label", Type::Text, true).column("name", Type::Text, false).key("name");
    let rows = |schema: &Schema| -> [Vec<Value>; 2] {
        let full = schema.columns.iter().enumerate().map(|(i, c)| match c.ty {
            Type::Int => Value::Int(i as i64 + 7),
            Type::Float => Value::Float(1.5),
            Type::Bool => Value::Bool(true),
            _ => Value::Text(format!("v{i}")),
        });
        let sparse = schema.columns.iter().enumerate().map(|(i, c)| match (c.nullable, c.ty) {
            (true, _) => Value::Null,
            (false, Type::Text) => Value::Text(String::new()),
            (false, Type::Float) => Value::Float(-0.0),
            (false, Type::Bool) => Value::Bool(false),
            (false, _) => Value::Int(-(i as i64)),
        });
        [full.collect(), sparse.collect()]
    };
    /// A statement of a row, and the values its `*_params` function lists.
    type Build<'a> = dyn Fn(&[Value]) -> (SqlQuery, Vec<Value>) + 'a;
    #[track_caller]
    fn check(what: &str, d: Dialect, built: [(SqlQuery, Vec<Value>); 2]) {
        let [(first, first_params), (second, second_params)] = built;
        assert_eq!(first.text, second.text, "{what} {d:?}: the text moved with the values");
        assert_eq!(first.params, first_params, "{what} {d:?}: {}", first.text);
        assert_eq!(second.params, second_params, "{what} {d:?}: {}", second.text);
    }
    for schema in [schema(), key_last] {
        let key = schema.key;
        for d in DIALECTS {
            let built = |f: &Build<'_>| rows(&schema).map(|r| f(&r));
            check("insert", d, built(&|r| (sql::insert(d, &schema, r), sql::insert_params(r))));
            check("update", d, built(&|r| (sql::update(d, &schema, r), sql::update_params(&schema, r))));
            check(
                "row_for_update",
                d,
                built(&|r| (sql::row_for_update(d, &schema, &r[key]), sql::row_for_update_params(&r[key]))),
            );
            if sql::update_returning_old(d, &schema, &rows(&schema)[0]).is_some() {
                check(
                    "update_returning_old",
                    d,
                    built(&|r| {
                        let q = sql::update_returning_old(d, &schema, r).expect("the dialect returns old rows");
                        (q, sql::update_params(&schema, r))
                    }),
                );
            }
            let (registry, outbox) = (registry_schema(), outbox_schema());
            let known = ["category_id/0".to_owned()];
            let entry = |r: &[Value]| vec![r[key].clone(), Value::from("k"), Value::Int(r.len() as i64), Value::Null];
            // The statements of a row (where the dialect has them) and their params.
            let unchanged = [(key + 1) % schema.columns.len()];
            let was = rows(&schema)[1].clone();
            let changes = [
                sql::RowChange::Update { unchanged: &unchanged },
                sql::RowChange::Insert,
                sql::RowChange::Delete { unchanged: &unchanged },
                sql::RowChange::Move { unchanged: &unchanged, was: &was },
            ];
            for change in changes {
                let guarded = |r: &[Value]| {
                    let (entry, forget) = (entry(r), [Value::Int(r.len() as i64)]);
                    let write = sql::GuardedWrite {
                        schema: &schema,
                        row: r,
                        change,
                        registry: &registry,
                        known: &known,
                        outbox: &outbox,
                        entry: &entry,
                        forget: &forget,
                    };
                    (sql::guarded_write_with_entry(d, &write), sql::guarded_write_params(&write))
                };
                if guarded(&rows(&schema)[0]).0.is_some() {
                    check(
                        &format!("guarded_write_with_entry {change:?}"),
                        d,
                        built(&|r| {
                            let (q, params) = guarded(r);
                            (q.expect("as above"), params)
                        }),
                    );
                }
            }
            for n in [0, 1, 3] {
                let keys =
                    |r: &[Value]| (0..n).map(|i| Value::Int(i64::from(i) * 11 + r.len() as i64)).collect::<Vec<_>>();
                let lookup =
                    Schema::new("Reg", "reg").column("id", Type::Int, false).column("t", Type::Text, false).key("id");
                let filter = in_param(f("t"), "ts");
                let tables = vec![Value::Text("item".into()), Value::Text("tag".into())];
                let bound = vec![("ts".to_owned(), Value::List(tables.clone()))];
                let read = (&lookup, &filter, &bound as &dyn memdex_grammar::params::Params);
                if let Ok(Some(_)) = sql::insert_then_select(d, &schema, &rows(&schema)[0], &keys(&[]), read) {
                    check(
                        &format!("insert_then_select of {n}"),
                        d,
                        built(&|r| {
                            let q = sql::insert_then_select(d, &schema, r, &keys(r), read)
                                .ok()
                                .flatten()
                                .expect("as above");
                            (q, sql::insert_then_select_params(r, &keys(r), &tables))
                        }),
                    );
                }
            }
        }
    }
}
