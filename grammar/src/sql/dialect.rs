//! What differs between SQLite, PostgreSQL and MySQL, as one trait with one
//! implementation per dialect. The emitter only ever calls these methods; it never
//! asks which dialect it is emitting for.

use sqlparser::ast::{
    Assignment, AssignmentTarget, BinaryOperator, ColumnOption, DataType, DateTimeField, DropTrigger, ExactNumberInfo,
    Expr, ExtractSyntax, FunctionArg, FunctionArgExpr, GeneratedAs, Ident, InTarget, Lock, LockTable, LockTableMode,
    LockTableTarget, LockTableType, ObjectName, OnConflict, OnConflictAction, OnInsert, SetExpr, Statement,
    TableFactor, TableFunctionArgs, UnaryOperator,
};
use sqlparser::tokenizer::Token;

use super::SqlError;
use super::ast::{
    self, binary, boolean, case, cast, constant_string, float, function, function_with_args, nested, number, operand,
    unary,
};
use crate::capture::SessionMark;
use crate::ir::{ArithOp, StrOp};
use crate::value::{Type, Value};

/// Emits a fresh copy of an operand of a float operation: `0` for `a`, `1` for `b`.
/// Copies must be asked for in the order they appear in the SQL text, because
/// positional placeholders (`?`) are bound in the order they are emitted.
pub(crate) type Operands<'a> = dyn FnMut(usize) -> Result<Expr, SqlError> + 'a;

/// The per-dialect pieces of SQL generation.
pub(crate) trait SqlDialect {
    /// The identifier quote: the SQL standard's `"` unless the dialect says otherwise.
    fn quote(&self) -> char {
        '"'
    }

    /// The statements that begin an index registration: they lock `registry` against
    /// other registrations, and `table` so that the lock waits for every write
    /// transaction in flight on it and holds off new ones until the registration
    /// commits. None by default: SQLite's one write lock, which a write transaction
    /// (`BEGIN IMMEDIATE`) holds from its start, already does both.
    fn lock_for_registration(&self, _table: &str, _registry: &str) -> Vec<Statement> {
        Vec::new()
    }

    /// The statements that begin an index registration on a connection of their own,
    /// held until the registration's transaction (on another connection) has
    /// committed, then released by [`SqlDialect::unlock_after_registration`]: for a
    /// dialect whose table lock cannot be taken inside the registration's
    /// transaction. None by default.
    fn hold_for_registration(&self, _table: &str) -> Vec<Statement> {
        Vec::new()
    }

    /// The statement that releases what [`SqlDialect::hold_for_registration`] took.
    fn unlock_after_registration(&self) -> Option<Statement> {
        None
    }

    /// The clause of an insert that keeps an existing row with the same key.
    fn keep_existing(&self, _key: Ident) -> OnInsert {
        OnInsert::OnConflict(OnConflict { conflict_target: None, action: OnConflictAction::DoNothing })
    }

    /// The placeholder for the `n`th bound value (1-based): `?` unless the dialect
    /// numbers its placeholders.
    fn placeholder(&self, _n: usize) -> String {
        "?".into()
    }

    /// `a == b` (or `a != b` when `negated`) where either side may be NULL, with
    /// Rust's `Option` meaning: `None == None`, `None != Some(_)`.
    fn null_safe_eq(&self, a: Expr, b: Expr, negated: bool) -> Expr;

    /// The bound pattern for a case-sensitive, byte-exact `starts_with`/`ends_with`/
    /// `contains` of `needle`, with the dialect's wildcards escaped: by default a
    /// `LIKE` pattern escaped with [`LIKE_ESCAPE`].
    fn match_pattern(&self, op: StrOp, needle: &str) -> String {
        like_pattern(op, needle, LIKE_ESCAPE)
    }

    /// `subject` matches the bound `pattern` built by [`SqlDialect::match_pattern`].
    fn pattern_test(&self, subject: Expr, pattern: Expr) -> Expr;

    /// A text operand of a comparison, made to compare byte-wise. `ordering` is true
    /// for `< <= > >=` and `ORDER BY`, false for equality.
    fn bytewise(&self, e: Expr, ordering: bool) -> Expr;

    /// Whether [`SqlDialect::bytewise`] goes on the bound value of a comparison with
    /// a column (`col = ? COLLATE …`) rather than on the column. Where the collation
    /// is an explicit clause that wins over the column's own (MySQL), naming it on
    /// the value keeps the column bare, and an index on the column serves the
    /// comparison whenever the index has that collation; named on the column, no
    /// index could.
    fn bytewise_on_values(&self) -> bool {
        false
    }

    /// `prefix(column, n) = value` for a prefix index node, `value` bound by `bind`
    /// (in text order). `value` is the node's prefix: the first `n` characters of
    /// the rows' text, or all of it for shorter text.
    fn prefix_equals(&self, column: Expr, n: u32, value: &str, bind: &mut dyn FnMut(Value) -> Expr) -> Expr {
        let prefix = self.bytewise(self.prefix(column, n), false);
        binary(prefix, BinaryOperator::Eq, bind(Value::Text(value.to_owned())))
    }

    /// Rust's `to_lowercase` of `e` ([`SqlDialect::unicode_lower`] applied to it);
    /// `bind` binds any value the dialect's form needs, in text order.
    fn lower(&self, e: Expr, _bind: &mut dyn FnMut(Value) -> Expr) -> Expr {
        function(self.unicode_lower(), vec![e])
    }

    /// `NULLS FIRST`/`NULLS LAST` needed for Rust's order (`None` before `Some`),
    /// or `None` when the dialect already orders NULLs that way. By default `None`:
    /// SQLite and MySQL sort NULL before every value, as Rust sorts `None` first.
    fn nulls_first(&self, _desc: bool) -> Option<bool> {
        None
    }

    /// The length of a string in bytes.
    fn byte_length(&self, e: Expr) -> Expr;

    /// ASCII-only lowercase, for `eq_ignore_ascii_case`.
    fn ascii_lower(&self, e: Expr) -> Expr;

    /// Unicode lowercase, for `to_lowercase` ([`super::Dialect::lower_function`]).
    /// By default the built-in `LOWER`: in PostgreSQL it folds by the database's
    /// `LC_CTYPE` (Unicode-aware under an ICU or UTF-8 libc locale, the usual setup;
    /// ASCII-only under `C`), in MySQL by the string's character set (Unicode for
    /// utf8mb4).
    fn unicode_lower(&self) -> &'static str {
        "LOWER"
    }

    /// The floating point type AVG and SUM cast their argument to.
    fn float_type(&self) -> DataType;

    /// Integer division truncating toward zero, as Rust's `/` on `i64`. By default
    /// SQL's `/`, which truncates toward zero on two integers in SQLite and
    /// PostgreSQL.
    fn int_div(&self, a: Expr, b: Expr) -> Expr {
        binary(operand(a), BinaryOperator::Divide, operand(b))
    }

    /// Integer negation `-e` (where the emitter's checks already found it defined).
    fn int_neg(&self, e: Expr) -> Expr {
        unary(UnaryOperator::Minus, operand(e))
    }

    /// The first `n` characters of `e`, for prefix index nodes; by default
    /// `substr(e, 1, n)`.
    fn prefix(&self, e: Expr, n: u32) -> Expr {
        function("substr", vec![e, number(1), number(u64::from(n))])
    }

    /// A value whose type its context does not give (a bound value under `-`, in
    /// arithmetic, or compared with another bound value), made to have the SQL type
    /// of `ty` where the dialect needs it: PostgreSQL cannot type `-$1` or `$1 + $2`,
    /// and would type `$1 > 0` int4. By default a no-op: SQLite and MySQL type bound
    /// values from the values themselves.
    fn typed(&self, e: Expr, _ty: Type) -> Expr {
        e
    }

    /// A condition that is TRUE exactly when the float `a op b` (`+ - * /`) is
    /// finite, and raises no database error for any operands (finite, ±inf, NaN).
    /// `copy` emits copies of `a` and `b` (see [`Operands`]).
    fn float_finite(&self, op: ArithOp, copy: &mut Operands<'_>) -> Result<Expr, SqlError>;

    /// The float `a op b` (`+ - * /`) where [`SqlDialect::float_finite`] holds:
    /// IEEE's result, underflow to zero and subnormals included, without a database
    /// error. By default the plain operation: SQLite's float arithmetic is IEEE's,
    /// and MySQL's underflows to zero without an error.
    fn float_arith(&self, op: ArithOp, copy: &mut Operands<'_>) -> Result<Expr, SqlError> {
        float_op(op, copy(0)?, copy(1)?)
    }

    /// A condition that is TRUE exactly when the float `a` (`copy(0)`) is finite
    /// (so `-a` is). By default `|a| <= f64::MAX`, which is false for ±inf, and for
    /// NaN where the database has it.
    fn float_is_finite(&self, copy: &mut Operands<'_>) -> Result<Expr, SqlError> {
        Ok(finite_magnitude(copy(0)?))
    }

    /// `LIMIT` to emit when only `OFFSET` was asked for (SQLite and MySQL do not
    /// accept `OFFSET` alone), `None` when `OFFSET` may stand alone.
    fn limit_for_offset_only(&self) -> Option<Expr>;

    /// The column type in `CREATE TABLE`; `primary_key` for the key column.
    fn column_type(&self, ty: Type, primary_key: bool) -> DataType;

    /// An index key part for `column` of type `ty` in `CREATE INDEX`; `prefix` for
    /// a prefix index, whose nodes are filled by [`SqlDialect::prefix_equals`]: an
    /// index on that exact expression (or, in MySQL, on the leading characters)
    /// serves them. `text_parts` is the number of text columns of the index. By
    /// default the column, or `prefix(column, n)` ([`SqlDialect::prefix`]).
    fn index_part(&self, column: Ident, ty: Type, prefix: Option<u32>, _text_parts: usize) -> Expr {
        match (prefix, ty) {
            (Some(n), Type::Text) => self.prefix(Expr::Identifier(column), n),
            _ => Expr::Identifier(column),
        }
    }

    /// Whether a one-column text index is a hash index: memdex only looks such
    /// indexes up by equality, and a hash entry holds a value of any length. By
    /// default no: SQLite's btrees hold keys of any length (on overflow pages), and
    /// MySQL indexes a text column by a bounded key part.
    fn text_hash_index(&self) -> bool {
        false
    }

    /// The largest btree index entry in bytes, where the dialect has one that a
    /// long text value can exceed; by default none.
    fn btree_entry_limit(&self) -> Option<usize> {
        None
    }

    /// Whether `SELECT … FOR UPDATE` locks rows; by default yes. SQLite has no
    /// such clause (its write transactions lock the whole database).
    fn locks_rows(&self) -> bool {
        true
    }

    /// Whether a write can read the row it changes in its own statement (`UPDATE …
    /// FROM (SELECT … FOR UPDATE) … RETURNING`, `DELETE … RETURNING`), saving the
    /// round trip of a separate `SELECT … FOR UPDATE`; by default no (MySQL has no
    /// `RETURNING` on `UPDATE`; SQLite is in-process, where a statement costs no
    /// round trip).
    fn returns_old_rows(&self) -> bool {
        false
    }

    /// Whether `DELETE` may run inside an `INSERT`'s `WITH` clause, so that two
    /// writes of one transaction go in one statement (one round trip); by default
    /// no (SQLite's and MySQL's `WITH` hold queries only).
    fn data_modifying_with(&self) -> bool {
        false
    }

    /// The text of `value` (of type `ty`; its first `prefix` characters for a prefix
    /// index) exactly as a node key spells it (`keys::escape_value`), NULL as `~`,
    /// for a statement that names the nodes of a row it reads itself; by default
    /// none (only a dialect with [`SqlDialect::data_modifying_with`] has such
    /// statements).
    fn key_text(&self, _value: Expr, _ty: Type, _prefix: Option<u32>) -> Option<Expr> {
        None
    }

    /// `key`, a node key put together by [`SqlDialect::key_text`]'s pieces,
    /// shortened exactly as `keys::KeySpace` shortens a key over memcached's limit.
    fn shortened_key(&self, _key: Expr) -> Option<Expr> {
        None
    }

    /// Whether `CREATE INDEX IF NOT EXISTS` is accepted; by default yes.
    fn index_if_not_exists(&self) -> bool {
        true
    }

    /// The collation of text columns in `CREATE TABLE`, where the database's default
    /// would not compare them the way Rust compares `str` (`None`: the default does).
    fn text_collation(&self) -> Option<ObjectName> {
        None
    }

    /// The most characters a text primary key holds, where the dialect stores it in
    /// a column of bounded length (MySQL cannot key a column of unbounded text).
    fn text_key_chars(&self) -> Option<usize> {
        None
    }

    /// `needle` is one of the values of a list bound as ONE parameter, for `in`
    /// lists too long for a placeholder per element (databases cap the placeholders
    /// of a statement: SQLite at 32,766, PostgreSQL and MySQL at 65,535). `ty` is
    /// the needle's type, where known. `list` binds the list (without NULLs) and
    /// returns its placeholder; it is called only when the dialect has such a form.
    /// `None`: the dialect has none (for this type), and the list keeps one
    /// placeholder per element.
    fn in_bound_list(&self, needle: Expr, ty: Option<Type>, list: &mut dyn FnMut() -> Expr) -> Option<Expr>;

    /// A query for the columns of the table the one bound parameter names, one row
    /// per column, in order: its name. By default the SQL standard's
    /// `information_schema`, in the schema [`SqlDialect::current_schema`] names.
    fn columns_query(&self) -> String {
        format!(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = {} AND table_name = {} \
             ORDER BY ordinal_position",
            self.current_schema(),
            self.placeholder(1)
        )
    }

    /// The schema (MySQL: the database) unqualified table names resolve to.
    fn current_schema(&self) -> &'static str {
        "CURRENT_SCHEMA"
    }

    /// A query for the indexes of the table the one bound parameter names, one row
    /// per key part, by index and then position: the index's name, the column's
    /// name (NULL for an expression), and 1 for a partial index, else 0. The SQL
    /// standard has no catalog of indexes, so every dialect says its own.
    fn indexes_query(&self) -> String;

    /// Whether the database matches table, column and index names ignoring ASCII
    /// case (SQLite does, and MySQL for columns and indexes); by default not.
    fn identifiers_ignore_case(&self) -> bool {
        false
    }

    /// The options that make an integer primary key number its rows itself (the
    /// captured changes' ids); by default none: SQLite's `INTEGER PRIMARY KEY` is
    /// the rowid, assigned when an insert leaves it out.
    fn auto_key(&self) -> Vec<ColumnOption> {
        Vec::new()
    }

    /// A row image as a capture trigger records it: a JSON array of `values`
    /// ([`SqlDialect::image_value`]), as text.
    fn image(&self, values: Vec<Expr>) -> Expr {
        function("json_array", values)
    }

    /// `column` (of type `ty`) as an element of [`SqlDialect::image`] that the drain
    /// turns back into the value a key spells. By default the column itself
    /// (integers, text, booleans and timestamps are JSON numbers, strings or
    /// booleans as they are), byte strings and UUIDs as hex, and floats as decimal
    /// text with 27 significant digits, which SQLite (whose JSON writes only 15)
    /// converts to within one unit in the last place of the double, not exactly:
    /// the drain reads such a float as approximate (`runtime::capture`).
    fn image_value(&self, column: Expr, ty: Type) -> Expr {
        match ty {
            Type::Bytes | Type::Uuid => function("hex", vec![column]),
            Type::Float => function("printf", vec![constant_string("%!.26e"), column]),
            _ => column,
        }
    }

    /// The condition under which a capture trigger records a write: the session is
    /// not one of memdex's, which keep the cache right themselves
    /// (`capture::SessionMark`, set on every connection memdex opens).
    fn outside_memdex(&self) -> Expr;

    /// Whether a row trigger takes a `WHEN` condition, which the database checks
    /// before it runs (or, for an `AFTER` trigger, queues) the trigger's body at
    /// all: memdex's own writes then pay only the condition. By default yes; where
    /// not, the condition goes into the body's statement.
    fn trigger_has_when(&self) -> bool {
        true
    }

    /// The statements that install `trigger`, running `body`, in place of one by
    /// that name. By default SQLite's: `DROP TRIGGER IF EXISTS` then `CREATE
    /// TRIGGER … BEGIN body; END` (run in one transaction, so no write goes
    /// uncaptured in between).
    fn capture_trigger(&self, trigger: ast::Trigger, body: Statement) -> Vec<Statement> {
        let drop = Statement::DropTrigger(DropTrigger {
            if_exists: true,
            trigger_name: trigger.name.clone(),
            table_name: None,
            option: None,
        });
        vec![drop, ast::create_trigger(trigger, false, ast::TriggerBody::Statements(vec![body]))]
    }
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

/// The escaped needle with the "any characters" wildcard where the test leaves the
/// text open, concatenated directly (one pattern is built per string test).
fn wrap(op: StrOp, escaped: &str, any: &str) -> String {
    let (before, after) = match op {
        StrOp::StartsWith => ("", any),
        StrOp::EndsWith => (any, ""),
        StrOp::Contains => (any, any),
    };
    let mut pattern = String::with_capacity(before.len() + escaped.len() + after.len());
    pattern.push_str(before);
    pattern.push_str(escaped);
    pattern.push_str(after);
    pattern
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
        escape_char: Some(Box::new(constant_string(LIKE_ESCAPE.encode_utf8(&mut [0; 4])))),
    }
}

/// `a op b` as SQL, for `+ - * /` on floats.
fn float_op(op: ArithOp, a: Expr, b: Expr) -> Result<Expr, SqlError> {
    let op = match op {
        ArithOp::Add => BinaryOperator::Plus,
        ArithOp::Sub => BinaryOperator::Minus,
        ArithOp::Mul => BinaryOperator::Multiply,
        ArithOp::Div => BinaryOperator::Divide,
        ArithOp::Rem => return Err(float_remainder()),
    };
    Ok(binary(operand(a), op, operand(b)))
}

/// The checker rejects `%` on floats; a macro parameter whose type only rustc knew
/// can still reach the emitter with one.
pub(crate) fn float_remainder() -> SqlError {
    SqlError::Unsupported("`%` needs integer operands: SQL has no float remainder".into())
}

fn abs(e: Expr) -> Expr {
    function("abs", vec![e])
}

fn cmp(a: Expr, op: BinaryOperator, b: Expr) -> Expr {
    binary(operand(a), op, operand(b))
}

/// `|x| <= f64::MAX`: false for ±inf, and for NaN where a database has it
/// (PostgreSQL orders NaN above every number).
fn finite_magnitude(x: Expr) -> Expr {
    cmp(abs(x), BinaryOperator::LtEq, float(f64::MAX))
}

fn and(a: Expr, b: Expr) -> Expr {
    binary(a, BinaryOperator::And, b)
}

fn or(a: Expr, b: Expr) -> Expr {
    binary(a, BinaryOperator::Or, b)
}

fn not(e: Expr) -> Expr {
    unary(UnaryOperator::Not, nested(e))
}

/// [`SqlDialect::float_finite`] for a database that computes IEEE's infinities
/// (SQLite: NaN becomes NULL, `x / 0.0` is NULL): the result minus itself is 0
/// exactly when it is finite, and NULL or NaN otherwise.
fn float_finite_by_result(op: ArithOp, copy: &mut Operands<'_>) -> Result<Expr, SqlError> {
    let first = float_op(op, copy(0)?, copy(1)?)?;
    let second = float_op(op, copy(0)?, copy(1)?)?;
    Ok(cmp(binary(nested(first), BinaryOperator::Minus, nested(second)), BinaryOperator::Eq, number(0)))
}

/// [`SqlDialect::float_finite`] for a database that raises an error where IEEE
/// gives an infinity (PostgreSQL, MySQL): decided from the operands, without
/// computing anything that could overflow or underflow. `infinity` is the
/// dialect's +inf constant, `None` where floats cannot be infinite (MySQL).
///
/// Exact except for division: `a / b` with `|b| < 1` is taken as finite when
/// `|a| <= fl(f64::MAX * |b|)`, which agreed with IEEE on 10^7 operand pairs within
/// three ulps of the boundary; a disagreement would be within an ulp of it.
fn float_finite_by_operands(
    op: ArithOp,
    copy: &mut Operands<'_>,
    infinity: Option<fn() -> Expr>,
) -> Result<Expr, SqlError> {
    use BinaryOperator::{Eq, GtEq, Lt, LtEq, NotEq};
    let both_finite = |copy: &mut Operands<'_>| -> Result<Expr, SqlError> {
        Ok(not(and(finite_magnitude(copy(0)?), finite_magnitude(copy(1)?))))
    };
    let one = || number(1);
    Ok(match op {
        // `a + b` can only overflow when both have one sign and magnitude >= 1;
        // then halving both is exact and the halves' sum cannot overflow.
        ArithOp::Add | ArithOp::Sub => {
            let opposite = if op == ArithOp::Add { NotEq } else { Eq };
            case(
                vec![
                    (both_finite(copy)?, boolean(false)),
                    (
                        cmp(nested(cmp(copy(0)?, Lt, number(0))), opposite, nested(cmp(copy(1)?, Lt, number(0)))),
                        boolean(true),
                    ),
                    (or(cmp(abs(copy(0)?), Lt, one()), cmp(abs(copy(1)?), Lt, one())), boolean(true)),
                ],
                Some(cmp(
                    binary(
                        binary(abs(copy(0)?), BinaryOperator::Multiply, float(0.5)),
                        BinaryOperator::Plus,
                        binary(abs(copy(1)?), BinaryOperator::Multiply, float(0.5)),
                    ),
                    LtEq,
                    float(f64::MAX / 2.0),
                )),
            )
        }
        // With both magnitudes above 1, scaling each by 2^-512 is exact and their
        // product is |a * b| * 2^-1024, which is below 1 exactly when |a * b| is
        // finite (and never 0, so PostgreSQL reports no underflow).
        ArithOp::Mul => case(
            vec![
                (both_finite(copy)?, boolean(false)),
                (or(cmp(abs(copy(0)?), LtEq, one()), cmp(abs(copy(1)?), LtEq, one())), boolean(true)),
            ],
            Some(cmp(
                binary(
                    nested(binary(abs(copy(0)?), BinaryOperator::Multiply, float(2f64.powi(-512)))),
                    BinaryOperator::Multiply,
                    nested(binary(abs(copy(1)?), BinaryOperator::Multiply, float(2f64.powi(-512)))),
                ),
                Lt,
                one(),
            )),
        ),
        // `a / ±inf` is 0 for a finite `a`; `a / 0` is not finite.
        ArithOp::Div => {
            let mut arms =
                vec![(not(finite_magnitude(copy(0)?)), boolean(false)), (cmp(copy(1)?, Eq, number(0)), boolean(false))];
            // Built in text order: the condition's copy before the result's.
            let divisor_at_least_one = cmp(abs(copy(1)?), GtEq, one());
            let infinite_divisor_ok = match infinity {
                Some(inf) => cmp(abs(copy(1)?), LtEq, inf()),
                None => boolean(true),
            };
            arms.push((divisor_at_least_one, infinite_divisor_ok));
            case(arms, Some(cmp(abs(copy(0)?), LtEq, binary(float(f64::MAX), BinaryOperator::Multiply, abs(copy(1)?)))))
        }
        ArithOp::Rem => return Err(float_remainder()),
    })
}

/// SQLite (3.35 or later, as bundled by `rusqlite`).
#[derive(Debug)]
pub(crate) struct Sqlite;

impl SqlDialect for Sqlite {
    fn columns_query(&self) -> String {
        "SELECT name FROM pragma_table_info(?) ORDER BY cid".into()
    }

    // An expression part (a prefix index's `substr`) has no name in `index_info`.
    fn indexes_query(&self) -> String {
        "SELECT il.name, ii.name, il.partial FROM pragma_index_list(?) AS il, pragma_index_info(il.name) AS ii \
         ORDER BY il.name, ii.seqno"
            .into()
    }

    fn identifiers_ignore_case(&self) -> bool {
        true
    }

    /// `needle IN (SELECT "value" FROM json_each(?))`: the runtime binds the list
    /// as a JSON array, which `json_each` (built into SQLite) turns back into
    /// values; an index on the needle's column still serves the lookup.
    fn in_bound_list(&self, needle: Expr, ty: Option<Type>, list: &mut dyn FnMut() -> Expr) -> Option<Expr> {
        if !json_list_type(ty) {
            return None;
        }
        let mut select = ast::select(vec![ast::column(self.quote(), "value")], ast::plain_name("json_each"), None);
        if let Some(TableFactor::Table { args, .. }) = select.from.first_mut().map(|t| &mut t.relation) {
            *args = Some(TableFunctionArgs {
                args: vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(list()))],
                settings: None,
            });
        }
        let subquery = ast::query(SetExpr::Select(Box::new(select)));
        Some(Expr::In {
            expr: Box::new(operand(needle)),
            target: InTarget::Subquery(Box::new(subquery)),
            negated: false,
            global: false,
        })
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

    fn float_finite(&self, op: ArithOp, copy: &mut Operands<'_>) -> Result<Expr, SqlError> {
        float_finite_by_result(op, copy)
    }

    /// `a - a` is 0 for a finite `a`, NULL (SQLite's NaN) for an infinite one.
    fn float_is_finite(&self, copy: &mut Operands<'_>) -> Result<Expr, SqlError> {
        Ok(cmp(nested(cmp(copy(0)?, BinaryOperator::Minus, copy(0)?)), BinaryOperator::Eq, number(0)))
    }

    /// `LIMIT -1` is SQLite's "no limit".
    fn limit_for_offset_only(&self) -> Option<Expr> {
        Some(unary(UnaryOperator::Minus, number(1)))
    }

    /// `INTEGER PRIMARY KEY` makes the key the rowid; booleans are 0/1 integers.
    fn column_type(&self, ty: Type, _primary_key: bool) -> DataType {
        match ty {
            Type::Int | Type::Bool | Type::Timestamp => DataType::Integer(None),
            Type::Float => DataType::Real,
            Type::Text | Type::Json => DataType::Text,
            Type::Bytes | Type::Uuid => DataType::Blob(None),
        }
    }

    fn locks_rows(&self) -> bool {
        false
    }

    /// `(SELECT cache_size FROM pragma_cache_size) <> -8191`: SQLite has no session
    /// variables, and a trigger may not read a connection's `temp` tables, but it
    /// may read the connection's page cache size, which memdex sets on its own
    /// connections to a size no other client picks by accident.
    fn outside_memdex(&self) -> Expr {
        let size =
            ast::select(vec![Expr::Identifier(Ident::new("cache_size"))], ast::plain_name("pragma_cache_size"), None);
        let size = Expr::Subquery(Box::new(ast::query(SetExpr::Select(Box::new(size)))));
        let mark = unary(UnaryOperator::Minus, number(SessionMark::SQLITE_CACHE_SIZE.unsigned_abs()));
        binary(size, BinaryOperator::NotEq, mark)
    }
}

/// PostgreSQL.
#[derive(Debug)]
pub(crate) struct Postgres;

/// PostgreSQL's +inf (a float literal beyond the range would be NUMERIC, not inf).
fn pg_infinity() -> Expr {
    cast(constant_string("Infinity"), DataType::DoublePrecision)
}

/// `CAST((EXTRACT(EPOCH FROM t) * 1000000) AS BIGINT)`: an instant as the
/// microseconds since 1970 memdex's values hold (`EXTRACT(EPOCH …)` is an exact
/// numeric, so nothing is rounded).
pub(super) fn postgres_epoch_micros(instant: Expr) -> Expr {
    let epoch = Expr::Extract { field: DateTimeField::Epoch, syntax: ExtractSyntax::From, expr: Box::new(instant) };
    cast(nested(binary(epoch, BinaryOperator::Multiply, number(1_000_000))), DataType::BigInt(None))
}

/// `TIMESTAMPTZ`: an instant with microsecond precision, whatever the session's time zone.
fn pg_timestamptz() -> DataType {
    DataType::Timestamp(None, sqlparser::ast::TimezoneInfo::Tz)
}

/// Whether a bound list of `ty` can go as one parameter (a JSON array or a
/// PostgreSQL array): for the scalar types a JSON array holds as they are. Lists
/// of bytes, timestamps and UUIDs keep a placeholder per element.
fn json_list_type(ty: Option<Type>) -> bool {
    matches!(ty, Some(Type::Int | Type::Float | Type::Bool | Type::Text) | None)
}

/// The collation that orders text by bytes, whatever the database's locale.
fn collate_c(e: Expr) -> Expr {
    Expr::Collate { expr: Box::new(operand(e)), collation: ObjectName::from(vec![Ident::with_quote('"', "C")]) }
}

impl SqlDialect for Postgres {
    /// `LOCK TABLE registry IN SHARE ROW EXCLUSIVE MODE` (self-conflicting, so two
    /// registrations run one after the other; it does not conflict with the ACCESS
    /// SHARE lock of a writer's SELECT of the registry), then `LOCK TABLE t IN SHARE
    /// MODE`, which conflicts with the ROW EXCLUSIVE lock every writer of `t` holds
    /// until it ends: it waits for the writers in flight, and new writers queue
    /// behind it. Both are released by the commit.
    fn lock_for_registration(&self, table: &str, registry: &str) -> Vec<Statement> {
        let lock = |name: &str, mode: LockTableMode| {
            Statement::Lock(Lock {
                tables: vec![LockTableTarget {
                    name: ast::object_name(self.quote(), name),
                    only: false,
                    has_asterisk: false,
                }],
                lock_mode: Some(mode),
                nowait: false,
            })
        };
        vec![lock(registry, LockTableMode::ShareRowExclusive), lock(table, LockTableMode::Share)]
    }

    fn returns_old_rows(&self) -> bool {
        true
    }

    fn auto_key(&self) -> Vec<ColumnOption> {
        vec![ColumnOption::Generated {
            generated_as: GeneratedAs::ByDefault,
            sequence_options: None,
            generation_expr: None,
            generation_expr_mode: None,
            generated_keyword: true,
        }]
    }

    fn image(&self, values: Vec<Expr>) -> Expr {
        function("json_build_array", values)
    }

    /// Timestamps as microseconds since 1970 (`EXTRACT(EPOCH …)` is an exact
    /// numeric), byte strings as hex; floats are exact as they are (PostgreSQL
    /// writes the shortest text that reads back as the same double, and
    /// `"Infinity"`/`"NaN"` as strings), UUIDs as their text.
    fn image_value(&self, column: Expr, ty: Type) -> Expr {
        match ty {
            Type::Timestamp => postgres_epoch_micros(column),
            Type::Bytes => function("encode", vec![column, constant_string("hex")]),
            _ => column,
        }
    }

    /// `current_setting('memdex.writer', true) IS DISTINCT FROM 'on'`: memdex sets
    /// the custom setting in the startup packet of its connections; `true` makes an
    /// unset one NULL rather than an error.
    fn outside_memdex(&self) -> Expr {
        let setting = function("current_setting", vec![constant_string(SessionMark::POSTGRES_SETTING), boolean(true)]);
        Expr::IsDistinctFrom(Box::new(setting), Box::new(constant_string("on")))
    }

    /// A trigger function in PL/pgSQL (`CREATE OR REPLACE FUNCTION … RETURNS TRIGGER`)
    /// running `body`, and `CREATE OR REPLACE TRIGGER … EXECUTE FUNCTION` (both
    /// replace in place, so no write goes uncaptured in between), named alike.
    fn capture_trigger(&self, trigger: ast::Trigger, body: Statement) -> Vec<Statement> {
        let function = Statement::CreateFunction(ast::create_function(
            trigger.name.clone(),
            DataType::Trigger,
            "plpgsql",
            format!("BEGIN {body}; RETURN NULL; END"),
        ));
        let name = trigger.name.clone();
        vec![function, ast::create_trigger(trigger, true, ast::TriggerBody::Function(name))]
    }

    // The catalog rather than `information_schema`: a table is found the way the
    // emitted SQL finds it, through the search path (`pg_table_is_visible`), where
    // `information_schema` would look in one schema only.
    fn columns_query(&self) -> String {
        "SELECT a.attname FROM pg_catalog.pg_attribute AS a JOIN pg_catalog.pg_class AS t ON t.oid = a.attrelid \
         WHERE t.relname = $1 AND t.relkind IN ('r', 'p') AND pg_catalog.pg_table_is_visible(t.oid) \
         AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
            .into()
    }

    // `indkey` is 0-based and names attribute 0 for an expression, which the
    // outer join leaves NULL; an index has at most 32 key parts.
    fn indexes_query(&self) -> String {
        "SELECT i.relname, a.attname, CASE WHEN x.indpred IS NULL THEN 0 ELSE 1 END \
         FROM pg_catalog.pg_index AS x JOIN pg_catalog.pg_class AS t ON t.oid = x.indrelid \
         JOIN pg_catalog.pg_class AS i ON i.oid = x.indexrelid \
         JOIN generate_series(0, 31) AS k(n) ON k.n < x.indnkeyatts \
         LEFT JOIN pg_catalog.pg_attribute AS a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[k.n] \
         WHERE t.relname = $1 AND pg_catalog.pg_table_is_visible(t.oid) ORDER BY i.relname, k.n"
            .into()
    }

    /// `needle = ANY($n)`, the list bound as one array: PostgreSQL infers the
    /// array's type from the needle, and a btree or hash index on its column serves
    /// the lookup.
    fn in_bound_list(&self, needle: Expr, ty: Option<Type>, list: &mut dyn FnMut() -> Expr) -> Option<Expr> {
        if !json_list_type(ty) {
            return None;
        }
        Some(Expr::AnyOp {
            left: Box::new(operand(needle)),
            compare_op: BinaryOperator::Eq,
            right: Box::new(list()),
            is_some: false,
        })
    }

    /// `$n`, written without the formatting machinery: one placeholder per bound
    /// value is built on every statement.
    fn placeholder(&self, n: usize) -> String {
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(n);
        let mut text = String::with_capacity(1 + digits.len());
        text.push('$');
        text.push_str(digits);
        text
    }

    fn null_safe_eq(&self, a: Expr, b: Expr, negated: bool) -> Expr {
        let (a, b) = (Box::new(operand(a)), Box::new(operand(b)));
        if negated { Expr::IsDistinctFrom(a, b) } else { Expr::IsNotDistinctFrom(a, b) }
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

    /// `octet_length` is int4; as BIGINT, the values it meets (`len(s) == $1`,
    /// `len(s) * 2`) are typed and computed as i64, as Rust's `usize as i64`.
    fn byte_length(&self, e: Expr) -> Expr {
        cast(function("octet_length", vec![e]), DataType::BigInt(None))
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

    fn float_type(&self) -> DataType {
        DataType::DoublePrecision
    }

    /// `CAST($1 AS BIGINT)`: PostgreSQL infers a placeholder's type from its
    /// context, and `-$1`, `$1 + $2` or `$1 = $2` give none (or int4, next to an
    /// integer constant).
    fn typed(&self, e: Expr, ty: Type) -> Expr {
        match ty {
            Type::Int => cast(e, DataType::BigInt(None)),
            Type::Float => cast(e, DataType::DoublePrecision),
            Type::Bool => cast(e, DataType::Boolean),
            Type::Timestamp => cast(e, pg_timestamptz()),
            Type::Uuid => cast(e, DataType::Uuid),
            Type::Bytes => cast(e, DataType::Bytea),
            Type::Json => cast(e, DataType::JSONB),
            Type::Text => e,
        }
    }

    /// PostgreSQL raises "value out of range" instead of computing an infinity,
    /// and stores NaN (ordered above every number): decided from the operands.
    fn float_finite(&self, op: ArithOp, copy: &mut Operands<'_>) -> Result<Expr, SqlError> {
        float_finite_by_operands(op, copy, Some(pg_infinity))
    }

    /// PostgreSQL raises "value out of range: underflow" where a product or a
    /// quotient of non-zero values rounds to zero; there the result is 0 without
    /// computing it. The test scales both operands so that nothing underflows:
    ///
    /// * `a * b` is 0 only when both magnitudes are below 1 and one is below
    ///   2^-512; then `(|a| * 2^537) * (|b| * 2^538)` is `|a * b| * 2^1075`, exact
    ///   up to its last rounding, and at most 1 exactly when IEEE rounds `a * b` to 0;
    /// * `a / b` is 0 only when `|a| < 2^-51` and `|b| >= 1`; then
    ///   `(|a| * 2^1000) / (|b| * 2^-74)` is `|a / b| * 2^1074`, at most 0.5 exactly
    ///   when IEEE rounds `a / b` to 0.
    ///
    /// The one approximation: an exact product or quotient within 2^-53 (relative)
    /// above 2^-1075 gives 0 here where IEEE gives 5e-324.
    fn float_arith(&self, op: ArithOp, copy: &mut Operands<'_>) -> Result<Expr, SqlError> {
        use BinaryOperator::{GtEq, Lt, LtEq, Multiply};
        let one = || number(1);
        let scaled = |e: Expr, exp: i32| binary(abs(e), Multiply, float(2f64.powi(exp)));
        Ok(match op {
            ArithOp::Mul => case(
                vec![
                    (
                        or(
                            or(cmp(abs(copy(0)?), GtEq, one()), cmp(abs(copy(1)?), GtEq, one())),
                            nested(and(
                                cmp(abs(copy(0)?), GtEq, float(2f64.powi(-512))),
                                cmp(abs(copy(1)?), GtEq, float(2f64.powi(-512))),
                            )),
                        ),
                        float_op(op, copy(0)?, copy(1)?)?,
                    ),
                    (
                        cmp(
                            binary(nested(scaled(copy(0)?, 537)), Multiply, nested(scaled(copy(1)?, 538))),
                            LtEq,
                            one(),
                        ),
                        number(0),
                    ),
                ],
                Some(float_op(op, copy(0)?, copy(1)?)?),
            ),
            ArithOp::Div => case(
                vec![
                    (
                        or(
                            or(cmp(abs(copy(0)?), GtEq, float(2f64.powi(-51))), cmp(abs(copy(1)?), Lt, one())),
                            cmp(abs(copy(1)?), BinaryOperator::Gt, float(f64::MAX)),
                        ),
                        float_op(op, copy(0)?, copy(1)?)?,
                    ),
                    (
                        cmp(
                            binary(
                                nested(scaled(copy(0)?, 1000)),
                                BinaryOperator::Divide,
                                nested(scaled(copy(1)?, -74)),
                            ),
                            LtEq,
                            float(0.5),
                        ),
                        number(0),
                    ),
                ],
                Some(float_op(op, copy(0)?, copy(1)?)?),
            ),
            _ => float_op(op, copy(0)?, copy(1)?)?,
        })
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
            Type::Timestamp => pg_timestamptz(),
            Type::Uuid => DataType::Uuid,
            Type::Bytes => DataType::Bytea,
            Type::Json => DataType::JSONB,
        }
    }

    /// A btree entry holds at most 2704 bytes ("index row size exceeds btree
    /// version 4 maximum 2704"); a hash index stores a 4-byte hash of any value.
    fn text_hash_index(&self) -> bool {
        true
    }

    /// `WITH d AS (DELETE …) INSERT …`: PostgreSQL runs every data-modifying
    /// statement of a `WITH`, referenced or not.
    fn data_modifying_with(&self) -> bool {
        true
    }

    fn key_text(&self, value: Expr, ty: Type, prefix: Option<u32>) -> Option<Expr> {
        super::key_text::postgres_key_text(value, ty, prefix)
    }

    fn shortened_key(&self, key: Expr) -> Option<Expr> {
        Some(super::key_text::postgres_shortened(key))
    }

    /// `BTMaxItemSize` for PostgreSQL's default 8 KB pages.
    fn btree_entry_limit(&self) -> Option<usize> {
        Some(2704)
    }
}

/// MySQL, as MariaDB (10.10 or later) runs it: the collations named below are
/// MariaDB's.
#[derive(Debug)]
pub(crate) struct MySql;

/// The collation under which MariaDB compares text as Rust compares `str`: by code
/// point (the order of UTF-8 bytes), case and accents significant, and trailing
/// spaces significant too (`NO PAD`; `utf8mb4_bin` is `PAD SPACE`: `'a' = 'a '`).
const MYSQL_BYTEWISE: &str = "utf8mb4_nopad_bin";

/// The collation whose case mapping `LOWER` uses for `to_lowercase`: Unicode 14's
/// (the default `utf8mb4` tables predate `ẞ` → `ß` and others).
const MYSQL_LOWER: &str = "utf8mb4_uca1400_as_cs";

/// `e COLLATE <name>` (a MariaDB collation name is a plain identifier).
fn collate(e: Expr, name: &str) -> Expr {
    Expr::Collate { expr: Box::new(operand(e)), collation: ObjectName::from(vec![Ident::new(name)]) }
}

/// The longest prefix of a text column MySQL indexes: a key part of TEXT needs a
/// length in characters, and an index entry holds at most 3072 bytes (InnoDB's
/// DYNAMIC rows), 4 bytes per `utf8mb4` character. Lookups through a prefix key
/// part stay exact: the server checks each row it finds against the whole value.
const MYSQL_KEY_BYTES: usize = 3072;
const MYSQL_TEXT_KEY_CHARS: usize = 255;

/// A text primary key is `VARCHAR(768)`: a primary key cannot be a prefix of a
/// value (it would make rows that differ later collide), and 768 `utf8mb4`
/// characters fill InnoDB's 3072-byte key.
const MYSQL_TEXT_PRIMARY_KEY_CHARS: usize = MYSQL_KEY_BYTES / 4;

/// Rust's `eq_ignore_ascii_case` folds exactly these 26 letters.
const ASCII_UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// `Final_Sigma` (Unicode's SpecialCasing, as Rust's `to_lowercase` applies it): a
/// capital sigma preceded by a cased letter (across case-ignorable characters) and
/// not followed by one becomes `ς`, every other one `σ`. PCRE (MariaDB's
/// `REGEXP_REPLACE`) has no variable-length look-behind, so the preceding letter is
/// matched and put back (`\1`); no final sigma can be the preceding letter of
/// another, so consecutive matches never overlap.
const FINAL_SIGMA: &str = r"(\p{Cased}\p{Case_Ignorable}*)Σ(?!\p{Case_Ignorable}*\p{Cased})";
const FINAL_SIGMA_REPLACEMENT: &str = r"\1ς";

impl SqlDialect for MySql {
    /// `LOCK TABLES t READ`, on a connection of its own: its metadata lock waits for
    /// every transaction that has touched `t` (each holds a shared-write metadata
    /// lock on it until it ends) and blocks new writers of `t` until `UNLOCK
    /// TABLES`. The registry is written meanwhile on another connection: a session
    /// under `LOCK TABLES` can use only the tables it locked, and locking the
    /// registry too (`memdex_indexes WRITE`) deadlocks with a writer in flight,
    /// which holds `t` and reads the registry before it commits (tried: MariaDB
    /// detects the deadlock and fails the writer).
    fn hold_for_registration(&self, table: &str) -> Vec<Statement> {
        vec![Statement::LockTables {
            tables: vec![LockTable {
                table: Ident::with_quote(self.quote(), table),
                alias: None,
                lock_type: LockTableType::Read { local: false },
            }],
        }]
    }

    fn unlock_after_registration(&self) -> Option<Statement> {
        Some(Statement::UnlockTables)
    }

    /// `ON DUPLICATE KEY UPDATE key = key`: MySQL has no `ON CONFLICT`, and `INSERT
    /// IGNORE` would also turn other errors into warnings.
    fn keep_existing(&self, key: Ident) -> OnInsert {
        OnInsert::DuplicateKeyUpdate(vec![Assignment {
            target: AssignmentTarget::ColumnName(ObjectName::from(vec![key.clone()])),
            value: Expr::Identifier(key),
        }])
    }

    fn current_schema(&self) -> &'static str {
        "DATABASE()"
    }

    // A prefix key part names its column (`SUB_PART` says how much of it).
    fn indexes_query(&self) -> String {
        "SELECT INDEX_NAME, COLUMN_NAME, 0 FROM information_schema.STATISTICS \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY INDEX_NAME, SEQ_IN_INDEX"
            .into()
    }

    fn identifiers_ignore_case(&self) -> bool {
        true
    }

    fn auto_key(&self) -> Vec<ColumnOption> {
        vec![ColumnOption::DialectSpecific(vec![Token::make_keyword("AUTO_INCREMENT")])]
    }

    fn image(&self, values: Vec<Expr>) -> Expr {
        function("JSON_ARRAY", values)
    }

    /// Byte strings and UUIDs (`BINARY(16)`) as hex; doubles are exact as they are
    /// (MariaDB writes the shortest text that reads back as the same double).
    fn image_value(&self, column: Expr, ty: Type) -> Expr {
        match ty {
            Type::Bytes | Type::Uuid => function("HEX", vec![column]),
            _ => column,
        }
    }

    /// `@memdex_writer IS NULL`: memdex sets the user variable on its connections
    /// (the pool's init statements, run again after every connection reset).
    fn outside_memdex(&self) -> Expr {
        Expr::IsNull(Box::new(Expr::Identifier(Ident::new(SessionMark::MYSQL_VARIABLE))))
    }

    /// MySQL's triggers have no `WHEN`.
    fn trigger_has_when(&self) -> bool {
        false
    }

    /// `CREATE OR REPLACE TRIGGER … BEGIN body; END`: replaced in place, since
    /// every DDL statement commits on its own in MySQL.
    fn capture_trigger(&self, trigger: ast::Trigger, body: Statement) -> Vec<Statement> {
        vec![ast::create_trigger(trigger, true, ast::TriggerBody::Statements(vec![body]))]
    }

    fn quote(&self) -> char {
        '`'
    }

    /// `needle IN (SELECT `v` FROM JSON_TABLE(?, '$[*]' COLUMNS(`v` BIGINT PATH '$'))
    /// AS `memdex_list`)`: MySQL has no array parameter, but reads a JSON array (the
    /// runtime binds the list as one) as a table whose column has the needle's SQL
    /// type. The server turns the `IN` into a semi-join that looks each element up
    /// in the needle column's index. Text elements compare byte-wise.
    fn in_bound_list(&self, needle: Expr, ty: Option<Type>, list: &mut dyn FnMut() -> Expr) -> Option<Expr> {
        use sqlparser::ast::{JsonTableColumn, JsonTableNamedColumn, TableAlias, Value as SqlValue};
        let data_type = match ty? {
            Type::Int | Type::Bool => DataType::BigInt(None),
            Type::Float => DataType::Double(ExactNumberInfo::None),
            Type::Text => DataType::Custom(ObjectName::from(vec![Ident::new("LONGTEXT")]), Vec::new()),
            Type::Bytes | Type::Timestamp | Type::Uuid | Type::Json => return None,
        };
        let element = Ident::with_quote(self.quote(), "v");
        let column = JsonTableColumn::Named(JsonTableNamedColumn {
            name: element.clone(),
            r#type: data_type,
            path: SqlValue::SingleQuotedString("$".into()).into(),
            exists: false,
            on_empty: None,
            on_error: None,
        });
        let table = TableFactor::JsonTable {
            json_expr: list(),
            json_path: SqlValue::SingleQuotedString("$[*]".into()).into(),
            columns: vec![column],
            alias: Some(TableAlias {
                explicit: true,
                name: Ident::with_quote(self.quote(), "memdex_list"),
                columns: Vec::new(),
                at: None,
            }),
        };
        let value = Expr::Identifier(element);
        let value = if ty == Some(Type::Text) { self.bytewise(value, false) } else { value };
        let mut select = ast::select(vec![value], ast::plain_name("memdex_list"), None);
        if let Some(from) = select.from.first_mut() {
            from.relation = table;
        }
        Some(Expr::In {
            expr: Box::new(operand(needle)),
            target: InTarget::Subquery(Box::new(ast::query(SetExpr::Select(Box::new(select))))),
            negated: false,
            global: false,
        })
    }

    /// `<=>` is MySQL's null-safe equality; it has no null-safe inequality.
    fn null_safe_eq(&self, a: Expr, b: Expr, negated: bool) -> Expr {
        let eq = binary(operand(a), BinaryOperator::Spaceship, operand(b));
        if negated { unary(UnaryOperator::Not, nested(eq)) } else { eq }
    }

    fn match_pattern(&self, op: StrOp, needle: &str) -> String {
        like_pattern(op, needle, LIKE_ESCAPE)
    }

    /// `LIKE` under the byte-wise collation, named on the pattern (a value), so that
    /// an index on the subject column serves a `starts_with` (prefix nodes).
    fn pattern_test(&self, subject: Expr, pattern: Expr) -> Expr {
        like(subject, self.bytewise(pattern, false))
    }

    /// MariaDB's default collations ignore case and accents, and `PAD SPACE`
    /// collations (`utf8mb4_bin` included) ignore trailing spaces in `=`:
    /// `COLLATE utf8mb4_nopad_bin` compares code points, in equality and order alike.
    /// An explicit `COLLATE` wins over a column's collation, so this holds for bound
    /// values and for tables memdex did not create too.
    fn bytewise(&self, e: Expr, _ordering: bool) -> Expr {
        collate(e, MYSQL_BYTEWISE)
    }

    fn bytewise_on_values(&self) -> bool {
        true
    }

    /// `col LIKE 'ab%' AND LEFT(col, n) = 'ab'`: MariaDB has no index on an
    /// expression, but a `LIKE` with a fixed start is a range over an index on the
    /// column; `LEFT` then makes the test exact for text shorter than `n`.
    fn prefix_equals(&self, column: Expr, n: u32, value: &str, bind: &mut dyn FnMut(Value) -> Expr) -> Expr {
        let pattern = bind(Value::Text(self.match_pattern(StrOp::StartsWith, value)));
        let range = self.pattern_test(column.clone(), pattern);
        let exact = binary(
            self.prefix(column, n),
            BinaryOperator::Eq,
            self.bytewise(bind(Value::Text(value.to_owned())), false),
        );
        and(range, exact)
    }

    /// MySQL's `LENGTH` counts bytes (`CHAR_LENGTH` counts characters).
    fn byte_length(&self, e: Expr) -> Expr {
        function("LENGTH", vec![e])
    }

    /// MySQL has no ASCII-only lowercase (`LOWER` folds `É` too): the 26 capitals
    /// are replaced one by one (`REPLACE` matches case-sensitively whatever the
    /// collation).
    fn ascii_lower(&self, e: Expr) -> Expr {
        ASCII_UPPER.chars().fold(e, |inner, upper| {
            let lower = upper.to_ascii_lowercase();
            function(
                "REPLACE",
                vec![
                    inner,
                    constant_string(upper.encode_utf8(&mut [0; 4])),
                    constant_string(lower.encode_utf8(&mut [0; 4])),
                ],
            )
        })
    }

    /// `LOWER` maps one character to one, by Unicode's simple case mapping, while
    /// Rust's `to_lowercase` applies the full mapping: `İ` becomes `i̇` (two
    /// characters, the only unconditional difference) and a final capital sigma `ς`.
    /// Both are rewritten first, under the byte-wise collation (a case-insensitive
    /// one would make `REGEXP_REPLACE` match `σ` for `Σ`); the pattern and its
    /// replacement are bound, so no backslash depends on the SQL mode. The result
    /// is compared byte-wise again.
    fn lower(&self, e: Expr, bind: &mut dyn FnMut(Value) -> Expr) -> Expr {
        let exact = collate(e, MYSQL_BYTEWISE);
        let dotted = function("REPLACE", vec![exact, constant_string("İ"), constant_string("i\u{307}")]);
        let pattern = bind(Value::Text(FINAL_SIGMA.to_owned()));
        let replacement = bind(Value::Text(FINAL_SIGMA_REPLACEMENT.to_owned()));
        let sigma = function("REGEXP_REPLACE", vec![dotted, pattern, replacement]);
        collate(function("LOWER", vec![collate(sigma, MYSQL_LOWER)]), MYSQL_BYTEWISE)
    }

    fn float_type(&self) -> DataType {
        DataType::Double(ExactNumberInfo::None)
    }

    /// MySQL's `/` always returns a decimal; `DIV` truncates toward zero.
    fn int_div(&self, a: Expr, b: Expr) -> Expr {
        binary(operand(a), BinaryOperator::MyIntegerDivide, operand(b))
    }

    /// `0 - e`: MariaDB works out the type of a negated constant (a bound value,
    /// or a negation of one) while preparing, by computing it, so `-(-?)` with
    /// `i64::MIN` bound fails with "BIGINT value is out of range" even in a `CASE`
    /// arm the checks never reach; a subtraction is computed only when reached.
    fn int_neg(&self, e: Expr) -> Expr {
        binary(number(0), BinaryOperator::Minus, operand(e))
    }

    fn prefix(&self, e: Expr, n: u32) -> Expr {
        function("LEFT", vec![e, number(u64::from(n))])
    }

    /// MySQL raises "DOUBLE value is out of range" instead of computing an
    /// infinity, and cannot hold one: decided from the operands.
    fn float_finite(&self, op: ArithOp, copy: &mut Operands<'_>) -> Result<Expr, SqlError> {
        float_finite_by_operands(op, copy, None)
    }

    /// The largest `LIMIT` MySQL accepts, its documented "no limit".
    fn limit_for_offset_only(&self) -> Option<Expr> {
        Some(ast::constant_number_text("18446744073709551615"))
    }

    /// Text is `LONGTEXT` (TEXT holds only 64 KB), a text primary key
    /// `VARCHAR(768)` ([`MYSQL_TEXT_PRIMARY_KEY_CHARS`]).
    fn column_type(&self, ty: Type, primary_key: bool) -> DataType {
        match ty {
            Type::Int => DataType::BigInt(None),
            Type::Float => DataType::Double(ExactNumberInfo::None),
            Type::Text if primary_key => DataType::Varchar(Some(sqlparser::ast::CharacterLength::IntegerLength {
                length: MYSQL_TEXT_PRIMARY_KEY_CHARS as u64,
                unit: None,
            })),
            Type::Text => DataType::Custom(ObjectName::from(vec![Ident::new("LONGTEXT")]), Vec::new()),
            Type::Bool => DataType::Boolean,
            // Microseconds since 1970 as a BIGINT: exact over every instant Rust's
            // types hold, where DATETIME(6) stops at the years 1000 and 9999 and
            // depends on the session's time zone.
            Type::Timestamp => DataType::BigInt(None),
            Type::Uuid => DataType::Binary(Some(16)),
            Type::Bytes => DataType::Custom(ObjectName::from(vec![Ident::new("LONGBLOB")]), Vec::new()),
            Type::Json => DataType::JSON,
        }
    }

    /// A text column is indexed by its leading characters, `` `name`(255) `` (a
    /// prefix index by its `n`), shared out so that the entry stays within 3072
    /// bytes; the key part's syntax is a call's: the quoted column name applied to
    /// the length.
    fn index_part(&self, column: Ident, ty: Type, prefix: Option<u32>, text_parts: usize) -> Expr {
        match ty {
            Type::Text | Type::Bytes => {
                let share = MYSQL_KEY_BYTES / 4 / text_parts.max(1) - 1;
                let chars = prefix.map_or(MYSQL_TEXT_KEY_CHARS, |n| n as usize).min(MYSQL_TEXT_KEY_CHARS).min(share);
                function_with_args(
                    ObjectName::from(vec![column]),
                    [FunctionArg::Unnamed(FunctionArgExpr::Expr(number(chars as u64)))],
                )
            }
            _ => Expr::Identifier(column),
        }
    }

    /// MariaDB accepts `CREATE INDEX IF NOT EXISTS`, MySQL 8 does not: the runtime
    /// takes "Duplicate key name" for done instead.
    fn index_if_not_exists(&self) -> bool {
        false
    }

    fn text_collation(&self) -> Option<ObjectName> {
        Some(ObjectName::from(vec![Ident::new(MYSQL_BYTEWISE)]))
    }

    fn text_key_chars(&self) -> Option<usize> {
        Some(MYSQL_TEXT_PRIMARY_KEY_CHARS)
    }
}
