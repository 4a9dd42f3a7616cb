//! What differs between SQLite, PostgreSQL and MySQL, as one trait with one
//! implementation per dialect. The emitter only ever calls these methods; it never
//! asks which dialect it is emitting for.

use sqlparser::ast::{
    BinaryOperator, DataType, ExactNumberInfo, Expr, FunctionArg, FunctionArgExpr, Ident, ObjectName, UnaryOperator,
};

use super::ast::{self, binary, cast, constant_string, function, function_with_args, nested, number, operand, unary};
use crate::ir::StrOp;
use crate::value::Type;

/// The per-dialect pieces of SQL generation.
pub(crate) trait SqlDialect {
    /// The identifier quote (`"` or `` ` ``).
    fn quote(&self) -> char;

    /// The placeholder for the `n`th bound value (1-based).
    fn placeholder(&self, n: usize) -> String;

    /// `a == b` (or `a != b` when `negated`) where either side may be NULL, with
    /// Rust's `Option` meaning: `None == None`, `None != Some(_)`.
    fn null_safe_eq(&self, a: Expr, b: Expr, negated: bool) -> Expr;

    /// The bound pattern for a case-sensitive, byte-exact `starts_with`/`ends_with`/
    /// `contains` of `needle`, with the dialect's wildcards escaped.
    fn match_pattern(&self, op: StrOp, needle: &str) -> String;

    /// `subject` matches the bound `pattern` built by [`SqlDialect::match_pattern`].
    fn pattern_test(&self, subject: Expr, pattern: Expr) -> Expr;

    /// A text operand of a comparison, made to compare byte-wise. `ordering` is true
    /// for `< <= > >=` and `ORDER BY`, false for equality.
    fn bytewise(&self, e: Expr, ordering: bool) -> Expr;

    /// `NULLS FIRST`/`NULLS LAST` needed for Rust's order (`None` before `Some`),
    /// or `None` when the dialect already orders NULLs that way.
    fn nulls_first(&self, desc: bool) -> Option<bool>;

    /// The length of a string in bytes.
    fn byte_length(&self, e: Expr) -> Expr;

    /// ASCII-only lowercase, for `eq_ignore_ascii_case`.
    fn ascii_lower(&self, e: Expr) -> Expr;

    /// Unicode lowercase, for `to_lowercase` ([`super::Dialect::lower_function`]).
    fn unicode_lower(&self) -> &'static str;

    /// The floating point type AVG and SUM cast their argument to.
    fn float_type(&self) -> DataType;

    /// Integer division truncating toward zero, as Rust's `/` on `i64`.
    fn int_div(&self, a: Expr, b: Expr) -> Expr;

    /// The first `n` characters of `e`, for prefix index nodes.
    fn prefix(&self, e: Expr, n: u32) -> Expr;

    /// `LIMIT` to emit when only `OFFSET` was asked for (SQLite and MySQL do not
    /// accept `OFFSET` alone), `None` when `OFFSET` may stand alone.
    fn limit_for_offset_only(&self) -> Option<Expr>;

    /// The column type in `CREATE TABLE`; `primary_key` for the key column.
    fn column_type(&self, ty: Type, primary_key: bool) -> DataType;

    /// An index key part for `column` of type `ty` in `CREATE INDEX`; `prefix` for
    /// a prefix index, whose nodes are filled with `prefix(column, n) = ?`
    /// ([`SqlDialect::prefix`]): an index on that exact expression serves them.
    fn index_part(&self, column: Ident, ty: Type, prefix: Option<u32>) -> Expr;

    /// Whether a one-column text index is a hash index: memdex only looks such
    /// indexes up by equality, and a hash entry holds a value of any length.
    fn text_hash_index(&self) -> bool;

    /// The largest btree index entry in bytes, where the dialect has one that a
    /// long text value can exceed.
    fn btree_entry_limit(&self) -> Option<usize>;

    /// Whether `CREATE INDEX IF NOT EXISTS` is accepted.
    fn index_if_not_exists(&self) -> bool;
}

/// Escapes `%`, `_` and `escape` itself with `escape`, then adds the `%` wildcards
/// `op` needs: the `LIKE` pattern of PostgreSQL and MySQL.
fn like_pattern(op: StrOp, needle: &str, escape: char) -> String {
    let mut escaped = String::with_capacity(needle.len() + 2);
    for ch in needle.chars() {
        if ch == '%' || ch == '_' || ch == escape {
            escaped.push(escape);
        }
        escaped.push(ch);
    }
    wrap(op, &escaped, "%")
}

fn wrap(op: StrOp, escaped: &str, any: &str) -> String {
    match op {
        StrOp::StartsWith => format!("{escaped}{any}"),
        StrOp::EndsWith => format!("{any}{escaped}"),
        StrOp::Contains => format!("{any}{escaped}{any}"),
    }
}

/// The escape character of `LIKE` patterns. Not `\`: MySQL reads a backslash inside
/// a string literal as an escape itself, so `ESCAPE '\'` would not even parse there.
const LIKE_ESCAPE: char = '!';

fn like(subject: Expr, pattern: Expr) -> Expr {
    Expr::Like {
        negated: false,
        any: false,
        expr: Box::new(operand(subject)),
        pattern: Box::new(pattern),
        escape_char: Some(Box::new(constant_string(&LIKE_ESCAPE.to_string()))),
    }
}

/// SQLite (3.35 or later, as bundled by `rusqlite`).
#[derive(Debug)]
pub(crate) struct Sqlite;

impl SqlDialect for Sqlite {
    fn quote(&self) -> char {
        '"'
    }

    fn placeholder(&self, _n: usize) -> String {
        "?".into()
    }

    /// SQLite's `IS` / `IS NOT` are its null-safe comparisons (and older than its
    /// `IS [NOT] DISTINCT FROM`). sqlparser has no node for them; the operator token
    /// is fixed text, never a value.
    fn null_safe_eq(&self, a: Expr, b: Expr, negated: bool) -> Expr {
        let op = if negated { "IS NOT" } else { "IS" };
        binary(operand(a), BinaryOperator::Custom(op.into()), operand(b))
    }

    /// SQLite's `LIKE` ignores ASCII case (unless a connection sets
    /// `case_sensitive_like`, which a pooled connection cannot rely on), so matching
    /// uses `GLOB`, which is case-sensitive and compares characters exactly. GLOB
    /// has no escape character: its wildcards `*`, `?` and `[` are escaped as the
    /// one-character classes `[*]`, `[?]` and `[[]`; `]` outside a class is literal.
    fn match_pattern(&self, op: StrOp, needle: &str) -> String {
        let mut escaped = String::with_capacity(needle.len() + 2);
        for ch in needle.chars() {
            match ch {
                '*' => escaped.push_str("[*]"),
                '?' => escaped.push_str("[?]"),
                '[' => escaped.push_str("[[]"),
                _ => escaped.push(ch),
            }
        }
        wrap(op, &escaped, "*")
    }

    fn pattern_test(&self, subject: Expr, pattern: Expr) -> Expr {
        binary(operand(subject), BinaryOperator::Custom("GLOB".into()), pattern)
    }

    /// SQLite compares text with the BINARY collation (memcmp of UTF-8) by default.
    fn bytewise(&self, e: Expr, _ordering: bool) -> Expr {
        e
    }

    /// SQLite sorts NULL before every value, as Rust sorts `None` before `Some`.
    fn nulls_first(&self, _desc: bool) -> Option<bool> {
        None
    }

    /// `length` of TEXT counts characters; of a BLOB, bytes.
    fn byte_length(&self, e: Expr) -> Expr {
        function("length", vec![cast(e, DataType::Blob(None))])
    }

    /// SQLite's built-in `lower` folds ASCII only: exactly `eq_ignore_ascii_case`.
    fn ascii_lower(&self, e: Expr) -> Expr {
        function("lower", vec![e])
    }

    fn unicode_lower(&self) -> &'static str {
        "memdex_lower"
    }

    fn float_type(&self) -> DataType {
        DataType::Real
    }

    /// SQLite's `/` on two integers truncates toward zero.
    fn int_div(&self, a: Expr, b: Expr) -> Expr {
        binary(operand(a), BinaryOperator::Divide, operand(b))
    }

    fn prefix(&self, e: Expr, n: u32) -> Expr {
        function("substr", vec![e, number(1), number(u64::from(n))])
    }

    /// `LIMIT -1` is SQLite's "no limit".
    fn limit_for_offset_only(&self) -> Option<Expr> {
        Some(unary(UnaryOperator::Minus, number(1)))
    }

    /// `INTEGER PRIMARY KEY` makes the key the rowid; booleans are 0/1 integers.
    fn column_type(&self, ty: Type, _primary_key: bool) -> DataType {
        match ty {
            Type::Int | Type::Bool => DataType::Integer(None),
            Type::Float => DataType::Real,
            Type::Text => DataType::Text,
        }
    }

    fn index_part(&self, column: Ident, ty: Type, prefix: Option<u32>) -> Expr {
        match (prefix, ty) {
            (Some(n), Type::Text) => self.prefix(Expr::Identifier(column), n),
            _ => Expr::Identifier(column),
        }
    }

    /// SQLite's btrees hold keys of any length (on overflow pages).
    fn text_hash_index(&self) -> bool {
        false
    }

    fn btree_entry_limit(&self) -> Option<usize> {
        None
    }

    fn index_if_not_exists(&self) -> bool {
        true
    }
}

/// PostgreSQL.
#[derive(Debug)]
pub(crate) struct Postgres;

/// The collation that orders text by bytes, whatever the database's locale.
fn collate_c(e: Expr) -> Expr {
    Expr::Collate { expr: Box::new(operand(e)), collation: ObjectName::from(vec![Ident::with_quote('"', "C")]) }
}

impl SqlDialect for Postgres {
    fn quote(&self) -> char {
        '"'
    }

    fn placeholder(&self, n: usize) -> String {
        format!("${n}")
    }

    fn null_safe_eq(&self, a: Expr, b: Expr, negated: bool) -> Expr {
        let (a, b) = (Box::new(operand(a)), Box::new(operand(b)));
        if negated { Expr::IsDistinctFrom(a, b) } else { Expr::IsNotDistinctFrom(a, b) }
    }

    fn match_pattern(&self, op: StrOp, needle: &str) -> String {
        like_pattern(op, needle, LIKE_ESCAPE)
    }

    /// PostgreSQL's `LIKE` is case-sensitive and, under a deterministic collation,
    /// compares characters exactly.
    fn pattern_test(&self, subject: Expr, pattern: Expr) -> Expr {
        like(subject, pattern)
    }

    /// Equality under PostgreSQL's deterministic collations is byte equality; only
    /// ordering depends on the locale, so ordering uses `COLLATE "C"` (byte order,
    /// which for UTF-8 is code point order, Rust's `str` order).
    fn bytewise(&self, e: Expr, ordering: bool) -> Expr {
        if ordering { collate_c(e) } else { e }
    }

    /// PostgreSQL sorts NULL as larger than every value; Rust's `None` is smaller.
    fn nulls_first(&self, desc: bool) -> Option<bool> {
        Some(!desc)
    }

    fn byte_length(&self, e: Expr) -> Expr {
        function("octet_length", vec![e])
    }

    /// `translate` maps exactly the 26 ASCII capitals, which is
    /// `eq_ignore_ascii_case`; `LOWER` would also fold non-ASCII letters (`É`) under
    /// most locales.
    fn ascii_lower(&self, e: Expr) -> Expr {
        function(
            "translate",
            vec![e, constant_string("ABCDEFGHIJKLMNOPQRSTUVWXYZ"), constant_string("abcdefghijklmnopqrstuvwxyz")],
        )
    }

    /// PostgreSQL's `LOWER` folds by the database's `LC_CTYPE`: Unicode-aware under
    /// an ICU or UTF-8 libc locale (the usual setup), ASCII-only under `C`.
    fn unicode_lower(&self) -> &'static str {
        "LOWER"
    }

    fn float_type(&self) -> DataType {
        DataType::DoublePrecision
    }

    /// PostgreSQL's `/` on integers truncates toward zero.
    fn int_div(&self, a: Expr, b: Expr) -> Expr {
        binary(operand(a), BinaryOperator::Divide, operand(b))
    }

    fn prefix(&self, e: Expr, n: u32) -> Expr {
        function("substr", vec![e, number(1), number(u64::from(n))])
    }

    fn limit_for_offset_only(&self) -> Option<Expr> {
        None
    }

    fn column_type(&self, ty: Type, _primary_key: bool) -> DataType {
        match ty {
            Type::Int => DataType::BigInt(None),
            Type::Float => DataType::DoublePrecision,
            Type::Text => DataType::Text,
            Type::Bool => DataType::Boolean,
        }
    }

    fn index_part(&self, column: Ident, ty: Type, prefix: Option<u32>) -> Expr {
        match (prefix, ty) {
            (Some(n), Type::Text) => self.prefix(Expr::Identifier(column), n),
            _ => Expr::Identifier(column),
        }
    }

    /// A btree entry holds at most 2704 bytes ("index row size exceeds btree
    /// version 4 maximum 2704"); a hash index stores a 4-byte hash of any value.
    fn text_hash_index(&self) -> bool {
        true
    }

    /// `BTMaxItemSize` for PostgreSQL's default 8 KB pages.
    fn btree_entry_limit(&self) -> Option<usize> {
        Some(2704)
    }

    fn index_if_not_exists(&self) -> bool {
        true
    }
}

/// MySQL 8.
#[derive(Debug)]
pub(crate) struct MySql;

/// How many leading characters of a TEXT column MySQL indexes (it cannot index a
/// whole TEXT): 255 characters of utf8mb4 stay under InnoDB's 3072-byte key limit.
const MYSQL_TEXT_KEY_CHARS: u64 = 255;

impl SqlDialect for MySql {
    fn quote(&self) -> char {
        '`'
    }

    fn placeholder(&self, _n: usize) -> String {
        "?".into()
    }

    /// `<=>` is MySQL's null-safe equality; it has no null-safe inequality.
    fn null_safe_eq(&self, a: Expr, b: Expr, negated: bool) -> Expr {
        let eq = binary(operand(a), BinaryOperator::Spaceship, operand(b));
        if negated { unary(UnaryOperator::Not, nested(eq)) } else { eq }
    }

    fn match_pattern(&self, op: StrOp, needle: &str) -> String {
        like_pattern(op, needle, LIKE_ESCAPE)
    }

    /// The subject is cast to a binary string ([`SqlDialect::bytewise`]), which
    /// makes `LIKE` compare bytes, case-sensitively.
    fn pattern_test(&self, subject: Expr, pattern: Expr) -> Expr {
        like(self.bytewise(subject, false), pattern)
    }

    /// MySQL's default collations ignore case and accents, and `PAD SPACE`
    /// collations (including `utf8mb4_bin`) ignore trailing spaces in `=`. A binary
    /// string compares bytes, in equality and order alike.
    fn bytewise(&self, e: Expr, _ordering: bool) -> Expr {
        cast(e, DataType::Binary(None))
    }

    /// MySQL sorts NULL before every value, as Rust sorts `None` before `Some`.
    fn nulls_first(&self, _desc: bool) -> Option<bool> {
        None
    }

    /// MySQL's `LENGTH` counts bytes (`CHAR_LENGTH` counts characters).
    fn byte_length(&self, e: Expr) -> Expr {
        function("LENGTH", vec![e])
    }

    /// MySQL has no ASCII-only lowercase: `LOWER` also folds non-ASCII letters, so
    /// `ieq("É", "é")` is true here while Rust's `eq_ignore_ascii_case` says false.
    fn ascii_lower(&self, e: Expr) -> Expr {
        function("LOWER", vec![e])
    }

    fn unicode_lower(&self) -> &'static str {
        "LOWER"
    }

    fn float_type(&self) -> DataType {
        DataType::Double(ExactNumberInfo::None)
    }

    /// MySQL's `/` always returns a decimal; `DIV` truncates toward zero.
    fn int_div(&self, a: Expr, b: Expr) -> Expr {
        binary(operand(a), BinaryOperator::MyIntegerDivide, operand(b))
    }

    fn prefix(&self, e: Expr, n: u32) -> Expr {
        function("LEFT", vec![e, number(u64::from(n))])
    }

    /// The largest `LIMIT` MySQL accepts, its documented "no limit".
    fn limit_for_offset_only(&self) -> Option<Expr> {
        Some(ast::constant_number_text("18446744073709551615"))
    }

    /// A TEXT primary key is not possible in MySQL (no key length); such keys are
    /// VARCHAR(255).
    fn column_type(&self, ty: Type, primary_key: bool) -> DataType {
        match ty {
            Type::Int => DataType::BigInt(None),
            Type::Float => DataType::Double(ExactNumberInfo::None),
            Type::Text if primary_key => DataType::Varchar(Some(sqlparser::ast::CharacterLength::IntegerLength {
                length: MYSQL_TEXT_KEY_CHARS,
                unit: None,
            })),
            Type::Text => DataType::Text,
            Type::Bool => DataType::Boolean,
        }
    }

    /// A TEXT column is indexed by a prefix key part, `` `name`(255) ``, whose
    /// syntax is a call's: the quoted column name applied to the length.
    fn index_part(&self, column: Ident, ty: Type, _prefix: Option<u32>) -> Expr {
        match ty {
            Type::Text => function_with_args(
                ObjectName::from(vec![column]),
                [FunctionArg::Unnamed(FunctionArgExpr::Expr(number(MYSQL_TEXT_KEY_CHARS)))],
            ),
            _ => Expr::Identifier(column),
        }
    }

    /// The key part above bounds every text entry.
    fn text_hash_index(&self) -> bool {
        false
    }

    fn btree_entry_limit(&self) -> Option<usize> {
        None
    }

    fn index_if_not_exists(&self) -> bool {
        false
    }
}
