//! Small constructors for the sqlparser AST nodes the emitter builds.
//!
//! sqlparser's structs carry many fields for other dialects' features (hints,
//! `TOP`, `QUALIFY`, …). These helpers fill those with their empty values in one
//! place, so the emitter reads as the SQL it produces. Nothing here formats SQL
//! text: every statement is rendered by sqlparser's `Display`.

use sqlparser::ast::helpers::attached_token::AttachedToken;
use sqlparser::ast::{
    BeginEndStatements, BinaryOperator, CaseWhen, CastKind, ConditionalStatements, CreateFunction, CreateFunctionBody,
    CreateTrigger, DataType, DollarQuotedString, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentClause,
    FunctionArgumentList, FunctionArguments, FunctionDesc, FunctionReturnType, GroupByExpr, Ident, ObjectName, Query,
    Select, SelectFlavor, SelectItem, SetExpr, Statement, TableAlias, TableFactor, TableWithJoins, TriggerEvent,
    TriggerExecBody, TriggerExecBodyType, TriggerObject, TriggerObjectKind, TriggerPeriod, UnaryOperator,
    Value as SqlValue,
};
use sqlparser::tokenizer::{Token, TokenWithSpan};

/// A quoted identifier (`"order"`, `` `order` ``): tables and columns may be keywords.
pub(crate) fn ident(quote: char, name: &str) -> Ident {
    Ident::with_quote(quote, name)
}

pub(crate) fn column(quote: char, name: &str) -> Expr {
    Expr::Identifier(ident(quote, name))
}

pub(crate) fn object_name(quote: char, name: &str) -> ObjectName {
    ObjectName::from(vec![ident(quote, name)])
}

/// An unquoted, fixed name: a built-in function (`substr`) or type.
pub(crate) fn plain_name(name: &str) -> ObjectName {
    ObjectName::from(vec![Ident::new(name)])
}

/// A placeholder as the dialect spells it (`?`, `$3`).
pub(crate) fn placeholder(text: String) -> Expr {
    Expr::value(SqlValue::Placeholder(text))
}

/// An integer constant that is part of the query's shape, never a user value
/// (`substr(s, 1, 3)`'s `1` and `3`, the `1 = 0` of an empty `IN`).
pub(crate) fn number(n: u64) -> Expr {
    Expr::value(SqlValue::Number(n.to_string(), false))
}

/// A constant string that is part of the query's shape (a `LIKE … ESCAPE '!'`
/// character), never a user value.
pub(crate) fn constant_string(s: &str) -> Expr {
    Expr::value(SqlValue::SingleQuotedString(s.to_owned()))
}

pub(crate) fn boolean(b: bool) -> Expr {
    Expr::value(SqlValue::Boolean(b))
}

pub(crate) fn null() -> Expr {
    Expr::value(SqlValue::Null)
}

/// `1 = 0`: a false condition every dialect accepts (SQLite before 3.23 has no
/// `FALSE` keyword, and `IN ()` is a syntax error everywhere but SQLite).
pub(crate) fn constant_false() -> Expr {
    binary(number(1), BinaryOperator::Eq, number(0))
}

pub(crate) fn binary(left: Expr, op: BinaryOperator, right: Expr) -> Expr {
    Expr::BinaryOp { left: Box::new(left), op, right: Box::new(right) }
}

pub(crate) fn unary(op: UnaryOperator, expr: Expr) -> Expr {
    Expr::UnaryOp { op, expr: Box::new(expr) }
}

pub(crate) fn nested(e: Expr) -> Expr {
    Expr::Nested(Box::new(e))
}

/// Parenthesises `e` unless it is a single token or already delimited, so that
/// sqlparser's `Display` (which prints the tree as built) keeps the tree's meaning.
pub(crate) fn operand(e: Expr) -> Expr {
    if is_atomic(&e) { e } else { nested(e) }
}

pub(crate) fn is_atomic(e: &Expr) -> bool {
    matches!(e, Expr::Identifier(_) | Expr::Value(_) | Expr::Function(_) | Expr::Cast { .. } | Expr::Nested(_))
}

pub(crate) fn cast(expr: Expr, data_type: DataType) -> Expr {
    Expr::Cast { kind: CastKind::Cast, expr: Box::new(expr), data_type, format: None }
}

pub(crate) fn function(name: &str, args: Vec<Expr>) -> Expr {
    function_with_args(plain_name(name), args.into_iter().map(|a| FunctionArg::Unnamed(FunctionArgExpr::Expr(a))))
}

/// `COUNT(*)`.
pub(crate) fn count_star() -> Expr {
    function_with_args(plain_name("COUNT"), [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)])
}

pub(crate) fn function_with_args(name: ObjectName, args: impl IntoIterator<Item = FunctionArg>) -> Expr {
    function_with_clauses(name, args, Vec::new())
}

/// [`function_with_args`] with clauses after the arguments (`STRING_AGG(x, '' ORDER
/// BY i)`).
pub(crate) fn function_with_clauses(
    name: ObjectName,
    args: impl IntoIterator<Item = FunctionArg>,
    clauses: Vec<FunctionArgumentClause>,
) -> Expr {
    Expr::Function(Function {
        name,
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args.into_iter().collect(),
            clauses,
        }),
        within_group: Vec::new(),
        filter: None,
        null_treatment: None,
        over: None,
    })
}

/// `AS name`, for a table.
pub(crate) fn table_alias(name: &str) -> TableAlias {
    TableAlias { explicit: true, name: Ident::new(name), columns: Vec::new(), at: None }
}

/// `(subquery) AS alias`, a table in a `FROM`.
pub(crate) fn derived_table(subquery: Query, alias: &str) -> TableWithJoins {
    let relation = TableFactor::Derived {
        lateral: false,
        subquery: Box::new(subquery),
        alias: Some(table_alias(alias)),
        sample: None,
    };
    TableWithJoins { relation, joins: Vec::new() }
}

/// `left || right`.
pub(crate) fn concat(left: Expr, right: Expr) -> Expr {
    binary(left, BinaryOperator::StringConcat, right)
}

pub(crate) fn table(name: ObjectName) -> TableWithJoins {
    TableWithJoins {
        relation: TableFactor::Table {
            name,
            alias: None,
            args: None,
            with_hints: Vec::new(),
            version: None,
            with_ordinality: false,
            partitions: Vec::new(),
            json_path: None,
            sample: None,
            index_directives: Vec::new(),
            inheritance: None,
        },
        joins: Vec::new(),
    }
}

/// `SELECT <projection> FROM <table> [WHERE <selection>]`.
pub(crate) fn select(projection: Vec<Expr>, from: ObjectName, selection: Option<Expr>) -> Select {
    select_items(projection.into_iter().map(SelectItem::UnnamedExpr).collect(), from, selection)
}

/// [`select`] over projection items built by the caller (all columns are built as
/// items directly, without a vector of expressions in between).
pub(crate) fn select_items(projection: Vec<SelectItem>, from: ObjectName, selection: Option<Expr>) -> Select {
    select_over(projection, vec![table(from)], selection)
}

/// `SELECT <projection> [WHERE <selection>]` with no `FROM`: one row, or none.
pub(crate) fn select_values(projection: Vec<Expr>, selection: Option<Expr>) -> Select {
    select_over(projection.into_iter().map(SelectItem::UnnamedExpr).collect(), Vec::new(), selection)
}

/// `SELECT <projection> FROM <from>` over tables built by the caller (derived
/// tables included); no `FROM` for none.
pub(crate) fn select_from(projection: Vec<SelectItem>, from: Vec<TableWithJoins>) -> Select {
    select_over(projection, from, None)
}

fn select_over(projection: Vec<SelectItem>, from: Vec<TableWithJoins>, selection: Option<Expr>) -> Select {
    Select {
        select_token: AttachedToken::empty(),
        optimizer_hints: Vec::new(),
        distinct: None,
        select_modifiers: None,
        top: None,
        top_before_distinct: false,
        projection,
        exclude: None,
        into: None,
        from,
        lateral_views: Vec::new(),
        prewhere: None,
        selection,
        connect_by: Vec::new(),
        group_by: GroupByExpr::Expressions(Vec::new(), Vec::new()),
        cluster_by: Vec::new(),
        distribute_by: Vec::new(),
        sort_by: Vec::new(),
        having: None,
        named_window: Vec::new(),
        qualify: None,
        window_before_qualify: false,
        value_table_mode: None,
        flavor: SelectFlavor::Standard,
    }
}

/// A query around a body, with no `ORDER BY` or `LIMIT` yet.
pub(crate) fn query(body: SetExpr) -> Query {
    Query {
        with: None,
        body: Box::new(body),
        order_by: None,
        limit_clause: None,
        fetch: None,
        locks: Vec::new(),
        for_clause: None,
        settings: None,
        format_clause: None,
        pipe_operators: Vec::new(),
    }
}

/// `a AND b AND …`; `None` for no items.
pub(crate) fn and_all(items: Vec<Expr>) -> Option<Expr> {
    fold(items, BinaryOperator::And)
}

/// `a op b op …`, left-associative; `None` for no items.
pub(crate) fn fold(items: Vec<Expr>, op: BinaryOperator) -> Option<Expr> {
    items.into_iter().reduce(|acc, e| binary(acc, op.clone(), e))
}

/// `CASE WHEN c1 THEN r1 … [ELSE e] END`.
pub(crate) fn case(arms: Vec<(Expr, Expr)>, else_result: Option<Expr>) -> Expr {
    Expr::Case {
        case_token: AttachedToken::empty(),
        end_token: AttachedToken::empty(),
        operand: None,
        conditions: arms.into_iter().map(|(condition, result)| CaseWhen { condition, result }).collect(),
        else_result: else_result.map(Box::new),
    }
}

/// A float constant of the query's shape (an overflow bound such as `f64::MAX`),
/// written as the shortest decimal that reads back as exactly `x`.
pub(crate) fn float(x: f64) -> Expr {
    constant_number_text(&format!("{x:e}"))
}

/// A numeric constant given as its digits (for values beyond `u64` formatting
/// needs, such as MySQL's maximal `LIMIT`).
pub(crate) fn constant_number_text(digits: &str) -> Expr {
    Expr::value(SqlValue::Number(digits.to_owned(), false))
}

/// What a trigger runs.
pub(crate) enum TriggerBody {
    /// `BEGIN s1; s2; END`.
    Statements(Vec<Statement>),
    /// `EXECUTE FUNCTION f()` (PostgreSQL).
    Function(ObjectName),
}

/// A row trigger to create: `CREATE [OR REPLACE] TRIGGER name AFTER event ON table
/// FOR EACH ROW [WHEN (when)] body`.
pub(crate) struct Trigger {
    pub(crate) name: ObjectName,
    pub(crate) table: ObjectName,
    pub(crate) event: TriggerEvent,
    pub(crate) when: Option<Expr>,
}

/// The statement that creates `trigger`, running `body`.
pub(crate) fn create_trigger(trigger: Trigger, or_replace: bool, body: TriggerBody) -> Statement {
    let Trigger { name, table, event, when } = trigger;
    let (exec_body, statements) = match body {
        TriggerBody::Statements(statements) => (
            None,
            Some(ConditionalStatements::BeginEnd(BeginEndStatements {
                begin_token: AttachedToken(TokenWithSpan::wrap(Token::make_keyword("BEGIN"))),
                statements,
                end_token: AttachedToken(TokenWithSpan::wrap(Token::make_keyword("END"))),
            })),
        ),
        TriggerBody::Function(name) => (
            Some(TriggerExecBody {
                exec_type: TriggerExecBodyType::Function,
                func_desc: FunctionDesc { name, args: Some(Vec::new()) },
            }),
            None,
        ),
    };
    Statement::CreateTrigger(CreateTrigger {
        or_alter: false,
        temporary: false,
        or_replace,
        is_constraint: false,
        name,
        period: Some(TriggerPeriod::After),
        period_before_table: true,
        events: vec![event],
        table_name: table,
        referenced_table_name: None,
        referencing: Vec::new(),
        trigger_object: Some(TriggerObjectKind::ForEach(TriggerObject::Row)),
        condition: when,
        exec_body,
        statements_as: false,
        statements,
        characteristics: None,
    })
}

/// `CREATE OR REPLACE FUNCTION name() RETURNS returns AS $memdex$body$memdex$
/// LANGUAGE language`. The body is text memdex rendered itself, from its own
/// statements, which never hold `$memdex$`.
pub(crate) fn create_function(name: ObjectName, returns: DataType, language: &str, body: String) -> CreateFunction {
    CreateFunction {
        or_alter: false,
        or_replace: true,
        temporary: false,
        if_not_exists: false,
        name,
        args: Some(Vec::new()),
        return_type: Some(FunctionReturnType::DataType(returns)),
        function_body: Some(CreateFunctionBody::AsBeforeOptions {
            body: Expr::value(SqlValue::DollarQuotedString(DollarQuotedString {
                value: body,
                tag: Some("memdex".to_owned()),
            })),
            link_symbol: None,
        }),
        behavior: None,
        called_on_null: None,
        parallel: None,
        security: None,
        set_params: Vec::new(),
        using: None,
        language: Some(Ident::new(language)),
        determinism_specifier: None,
        options: None,
        remote_connection: None,
    }
}
