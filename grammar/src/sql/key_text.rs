//! A node key put together by the database, from a row a statement reads itself
//! (PostgreSQL: `with_entry`'s writes that read their row). Every piece must be
//! exactly the text `keys::escape_value` gives the value, and the whole key exactly
//! what `keys::KeySpace` spells, shortening included: a drain deletes the keys an
//! outbox entry names, and a key spelled otherwise names another node.

use sqlparser::ast::{
    BinaryOperator, DataType, Expr, FunctionArg, FunctionArgExpr, FunctionArgumentClause, Ident, InTarget, OrderByExpr,
    OrderByOptions, Query, SelectItem, SetExpr, TableWithJoins,
};

use super::ast::{self, binary, cast, concat, constant_string, function, number};
use crate::keys::{MAX_KEY_LEN, READABLE_PREFIX, SHORTENED_DIGEST_HEX};
use crate::value::Type;

/// The text of `value`, of type `ty` (its first `prefix` characters for a prefix
/// index), as a node key spells it: an integer in decimal, a boolean as `true` or
/// `false`, an instant as its microseconds since 1970, a UUID as 32 lower-case hex
/// digits, bytes as `x` and two lower-case hex digits a byte, text percent-encoded
/// byte by byte outside `[A-Za-z0-9._-]`, NULL as `~`. `None` for JSON (never in a
/// key) and for floats, whose models keep the guarded statements. Rust's `{:?}`
/// and PostgreSQL's text of a double both give the shortest digits that read back
/// as it, in layouts SQL can rearrange, but their digits differ in two kinds of
/// tie: a shorter spelling exactly halfway to the next double, which reads back
/// by rounding half to even (Rust takes it: `1e23` where PostgreSQL writes
/// `9.999999999999999e+22`), and two shortest spellings equally far from the
/// double (Rust rounds up, PostgreSQL to even: `1000000000000000.3` against
/// `…0.2` for 1e15 + 0.25). An expression that finds both agreed with Rust on
/// 115,176 doubles (random bits, every double next to a power of ten, whole
/// numbers of few digits from 1e16, halves of odd 53-bit numbers at 78 scales),
/// but it needs correlated subqueries: ~41 µs a row on this machine's
/// PostgreSQL 15 against ~1 µs for a cast, on every write of such a model, to
/// save a second statement only when another process wrote the row last.
pub(super) fn postgres_key_text(value: Expr, ty: Type, prefix: Option<u32>) -> Option<Expr> {
    let value = match prefix {
        Some(n) => function("LEFT", vec![value, number(u64::from(n))]),
        None => value,
    };
    let spelled = match ty {
        Type::Int | Type::Bool => cast(value, DataType::Text),
        Type::Timestamp => cast(super::dialect::postgres_epoch_micros(value), DataType::Text),
        Type::Uuid => function("REPLACE", vec![cast(value, DataType::Text), constant_string("-"), constant_string("")]),
        Type::Bytes => concat(constant_string("x"), function("ENCODE", vec![value, constant_string("hex")])),
        Type::Text => {
            let is_null = Expr::IsNull(Box::new(value.clone()));
            return Some(ast::case(vec![(is_null, constant_string("~"))], Some(percent_encoded(value))));
        }
        _ => return None,
    };
    Some(function("COALESCE", vec![spelled, constant_string("~")]))
}

/// `key` as memcached may store it: as it is up to [`MAX_KEY_LEN`] bytes, else its
/// first [`READABLE_PREFIX`] bytes, `#` and the first 128 bits of its SHA-256 in hex
/// (a key is ASCII: every piece is escaped). `(SELECT CASE WHEN OCTET_LENGTH(k) <=
/// 250 THEN k ELSE LEFT(k, 217) || '#' || LEFT(ENCODE(SHA256(CONVERT_TO(k, 'UTF8')),
/// 'hex'), 32) END FROM (SELECT <key> AS k) AS memdex_key)`.
pub(super) fn postgres_shortened(key: Expr) -> Expr {
    const KEY: &str = "memdex_key_text";
    let k = || Expr::Identifier(Ident::new(KEY));
    let fits = binary(function("OCTET_LENGTH", vec![k()]), BinaryOperator::LtEq, number(MAX_KEY_LEN as u64));
    let digest = function("SHA256", vec![function("CONVERT_TO", vec![k(), constant_string("UTF8")])]);
    let digest =
        function("LEFT", vec![function("ENCODE", vec![digest, constant_string("hex")]), number(SHORTENED_DIGEST_HEX)]);
    let readable = function("LEFT", vec![k(), number(READABLE_PREFIX as u64)]);
    let shortened = concat(concat(readable, constant_string("#")), digest);
    let chosen = ast::case(vec![(fits, k())], Some(shortened));
    let named = derived(vec![aliased(key, KEY)], None, "memdex_key");
    scalar(vec![SelectItem::UnnamedExpr(chosen)], Some(named))
}

/// `value` percent-encoded as `keys::escape_text` does it, byte by byte of its UTF-8
/// form: `COALESCE((SELECT STRING_AGG(CASE WHEN <b is safe> THEN CHR(b) ELSE '%' ||
/// UPPER(LPAD(TO_HEX(b), 2, '0')) END, '' ORDER BY i) FROM (SELECT i,
/// GET_BYTE(bytes, i) AS b FROM (SELECT CONVERT_TO(v, 'UTF8') AS bytes,
/// GENERATE_SERIES(0, LENGTH(CONVERT_TO(v, 'UTF8')) - 1) AS i) AS memdex_i) AS
/// memdex_bytes), '')` (the empty string has no bytes to aggregate).
fn percent_encoded(value: Expr) -> Expr {
    let ident = |name: &str| Expr::Identifier(Ident::new(name));
    let utf8 = || function("CONVERT_TO", vec![value.clone(), constant_string("UTF8")]);
    let last = binary(function("LENGTH", vec![utf8()]), BinaryOperator::Minus, number(1));
    let positions = derived(
        vec![aliased(utf8(), "bytes"), aliased(function("GENERATE_SERIES", vec![number(0), last]), "i")],
        None,
        "memdex_i",
    );
    let byte = function("GET_BYTE", vec![ident("bytes"), ident("i")]);
    let bytes = derived(vec![SelectItem::UnnamedExpr(ident("i")), aliased(byte, "b")], Some(positions), "memdex_bytes");
    let b = || ident("b");
    let between = |low: u64, high: u64| Expr::Between {
        expr: Box::new(b()),
        negated: false,
        low: Box::new(number(low)),
        high: Box::new(number(high)),
    };
    let marks = Expr::In {
        expr: Box::new(b()),
        target: InTarget::List(vec![number(45), number(46), number(95)]),
        negated: false,
        global: false,
    };
    let safe = ast::fold(vec![between(48, 57), between(65, 90), between(97, 122), marks], BinaryOperator::Or);
    let hex = function("LPAD", vec![function("TO_HEX", vec![b()]), number(2), constant_string("0")]);
    let escaped = concat(constant_string("%"), function("UPPER", vec![hex]));
    let piece = ast::case(vec![(safe.unwrap_or_else(ast::constant_false), function("CHR", vec![b()]))], Some(escaped));
    let joined = ordered_string_agg(piece, ident("i"));
    let encoded = scalar(vec![SelectItem::UnnamedExpr(joined)], Some(bytes));
    function("COALESCE", vec![encoded, constant_string("")])
}

/// `STRING_AGG(piece, '' ORDER BY order)`.
fn ordered_string_agg(piece: Expr, order: Expr) -> Expr {
    let unnamed = |e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e));
    let order = OrderByExpr { expr: order, options: OrderByOptions { sort: None, nulls_first: None }, with_fill: None };
    let args = [unnamed(piece), unnamed(constant_string(""))];
    ast::function_with_clauses(ast::plain_name("STRING_AGG"), args, vec![FunctionArgumentClause::OrderBy(vec![order])])
}

fn aliased(expr: Expr, alias: &str) -> SelectItem {
    SelectItem::ExprWithAlias { expr, alias: Ident::new(alias) }
}

/// `(SELECT <projection> FROM <from>)` as a scalar value.
fn scalar(projection: Vec<SelectItem>, from: Option<TableWithJoins>) -> Expr {
    Expr::Subquery(Box::new(select_query(projection, from)))
}

/// `(SELECT <projection> [FROM <from>]) AS alias`, a table in a `FROM`.
fn derived(projection: Vec<SelectItem>, from: Option<TableWithJoins>, alias: &str) -> TableWithJoins {
    ast::derived_table(select_query(projection, from), alias)
}

fn select_query(projection: Vec<SelectItem>, from: Option<TableWithJoins>) -> Query {
    ast::query(SetExpr::Select(Box::new(ast::select_from(projection, from.into_iter().collect()))))
}
