//! Lowering checked IR expressions to sqlparser expressions, binding every value.
//!
//! The emitter walks the IR in the order its SQL text reads, so placeholders are
//! numbered (and `params` filled) left to right. Everything that differs between
//! dialects goes through [`SqlDialect`].

use sqlparser::ast::{BinaryOperator, Expr, UnaryOperator};

use super::SqlError;
use super::ast::{self, binary, cast, column, constant_false, function, nested, operand, unary};
use super::dialect::SqlDialect;
use crate::check::Aggregate;
use crate::ir::{AggFunc, ArithOp, CmpOp, Expr as IrExpr, ExprKind, Haystack};
use crate::params::Params;
use crate::schema::Schema;
use crate::value::{Type, Value};

/// Builds SQL expressions for one statement and collects its bound values.
pub(crate) struct Emitter<'a> {
    pub(crate) dialect: &'a dyn SqlDialect,
    pub(crate) schema: &'a Schema,
    params: &'a dyn Params,
    /// The bound values, in placeholder order.
    pub(crate) values: Vec<Value>,
}

/// Params for statements that bind no named parameters (rows, keys).
struct NoParams;

impl Params for NoParams {
    fn get(&self, _name: &str) -> Option<&Value> {
        None
    }
}

static NO_PARAMS: NoParams = NoParams;

impl<'a> Emitter<'a> {
    pub(crate) fn new(dialect: &'a dyn SqlDialect, schema: &'a Schema, params: &'a dyn Params) -> Emitter<'a> {
        Emitter { dialect, schema, params, values: Vec::new() }
    }

    /// An emitter for statements built from plain values (writes, key lookups).
    pub(crate) fn without_params(dialect: &'a dyn SqlDialect, schema: &'a Schema) -> Emitter<'a> {
        Emitter::new(dialect, schema, &NO_PARAMS)
    }

    /// Binds `value` and returns its placeholder.
    pub(crate) fn bind(&mut self, value: Value) -> Expr {
        self.values.push(value);
        ast::placeholder(self.dialect.placeholder(self.values.len()))
    }

    /// The quoted column `i`.
    pub(crate) fn column(&self, i: usize) -> Expr {
        column(self.dialect.quote(), &self.schema.columns[i].name)
    }

    pub(crate) fn table(&self) -> sqlparser::ast::ObjectName {
        ast::object_name(self.dialect.quote(), &self.schema.table)
    }

    /// `a IN (?, …)` over values, or `1 = 0` for none.
    pub(crate) fn in_values(&mut self, needle: Expr, values: Vec<Value>) -> Expr {
        if values.is_empty() {
            return constant_false();
        }
        let list = values.into_iter().map(|v| self.bind(v)).collect();
        Expr::In {
            expr: Box::new(operand(needle)),
            target: sqlparser::ast::InTarget::List(list),
            negated: false,
            global: false,
        }
    }

    /// `column = ?`, comparing text byte-wise.
    pub(crate) fn column_equals(&mut self, i: usize, value: Value) -> Expr {
        let col = self.column(i);
        if value.is_null() {
            return Expr::IsNull(Box::new(col));
        }
        let col = self.text_side(col, self.schema.columns[i].ty, false);
        let ph = self.bind(value);
        binary(col, BinaryOperator::Eq, ph)
    }

    fn text_side(&self, e: Expr, ty: Type, ordering: bool) -> Expr {
        if ty == Type::Text { self.dialect.bytewise(e, ordering) } else { e }
    }

    fn param(&self, name: &str) -> Result<&'a Value, SqlError> {
        self.params.get(name).ok_or_else(|| SqlError::Unbound(name.to_owned()))
    }

    /// The value of a literal or parameter expression, if it is one.
    fn constant(&self, e: &IrExpr) -> Result<Option<Value>, SqlError> {
        Ok(match &e.kind {
            ExprKind::Lit(v) => Some(v.clone()),
            ExprKind::Param(p) => Some(self.param(p)?.clone()),
            _ => None,
        })
    }

    /// The text of a string-test pattern: a string value, or `.lower()` of one,
    /// lowered here by Rust's own `to_lowercase` (the pattern is bound, not SQL).
    fn pattern_text(&self, e: &IrExpr) -> Result<Option<String>, SqlError> {
        Ok(match &e.kind {
            ExprKind::Lower(inner) => self.pattern_text(inner)?.map(|s| s.to_lowercase()),
            _ => match self.constant(e)? {
                Some(Value::Text(s)) => Some(s),
                _ => None,
            },
        })
    }

    /// The static type of an expression, from the schema and bound values.
    fn type_of(&self, e: &IrExpr) -> Option<Type> {
        match &e.kind {
            ExprKind::Field(f) => self.schema.column_by_field(f).map(|c| c.ty),
            ExprKind::Lit(v) => v.ty(),
            ExprKind::Param(p) => self.params.get(p).and_then(Value::ty),
            ExprKind::Neg(x) => self.type_of(x),
            ExprKind::Arith { lhs, rhs, .. } => match (self.type_of(lhs), self.type_of(rhs)) {
                (Some(Type::Float), _) | (_, Some(Type::Float)) => Some(Type::Float),
                (a, b) => a.or(b),
            },
            ExprKind::Lower(_) => Some(Type::Text),
            ExprKind::Len(_) => Some(Type::Int),
            _ => Some(Type::Bool),
        }
    }

    /// Whether the expression may be NULL as an `Option` (a nullable column, a
    /// `None` literal or parameter): comparisons then need null-safe operators.
    fn optional(&self, e: &IrExpr) -> Result<bool, SqlError> {
        Ok(match &e.kind {
            ExprKind::Field(f) => self.schema.column_by_field(f).is_some_and(|c| c.nullable),
            ExprKind::Lit(v) => v.is_null(),
            ExprKind::Param(p) => self.param(p)?.is_null(),
            ExprKind::Neg(x) | ExprKind::Lower(x) | ExprKind::Len(x) => self.optional(x)?,
            ExprKind::Arith { lhs, rhs, .. } => self.optional(lhs)? || self.optional(rhs)?,
            _ => false,
        })
    }

    /// Whether the expression's SQL may be NULL where Rust would panic: integer
    /// `/` or `%` by zero (emitted with `NULLIF(divisor, 0)`).
    fn may_fault(&self, e: &IrExpr) -> bool {
        let mut fault = false;
        e.visit(&mut |n| {
            if let ExprKind::Arith { op: ArithOp::Div | ArithOp::Rem, rhs, .. } = &n.kind {
                let literal_non_zero = matches!(&rhs.kind, ExprKind::Lit(Value::Int(i)) if *i != 0);
                fault |= !literal_non_zero && self.type_of(n) == Some(Type::Int);
            }
        });
        fault
    }

    /// A boolean filter.
    pub(crate) fn predicate(&mut self, e: &IrExpr) -> Result<Expr, SqlError> {
        let sql = match &e.kind {
            ExprKind::And(items) | ExprKind::Or(items) => {
                let is_and = matches!(e.kind, ExprKind::And(_));
                let op = if is_and { BinaryOperator::And } else { BinaryOperator::Or };
                let mut parts = Vec::with_capacity(items.len());
                for item in items {
                    let p = self.predicate(item)?;
                    // `AND` binds tighter than `OR`; an `OR` inside an `AND` needs
                    // parentheses, an `AND` inside an `OR` gets them for the reader.
                    let other = matches!(item.kind, ExprKind::And(_) | ExprKind::Or(_));
                    parts.push(if other { nested(p) } else { p });
                }
                match ast::fold(parts, op) {
                    Some(e) => e,
                    // An empty `and` is true, an empty `or` false (the parser never
                    // builds either; normalisation might).
                    None if is_and => unary(UnaryOperator::Not, nested(constant_false())),
                    None => constant_false(),
                }
            }
            ExprKind::Not(inner) => unary(UnaryOperator::Not, nested(self.predicate(inner)?)),
            ExprKind::Cmp { op, lhs, rhs } => self.comparison(*op, lhs, rhs)?,
            ExprKind::StrTest { op, subject, pattern } => {
                let needle = match self.pattern_text(pattern)? {
                    Some(s) => s,
                    None => {
                        return Err(SqlError::Unsupported(
                            "the pattern of starts_with/ends_with/contains must be a string literal or parameter, or \
                             `.lower()` of one"
                                .into(),
                        ));
                    }
                };
                let subject = self.value(subject)?;
                let pattern = self.bind(Value::Text(self.dialect.match_pattern(*op, &needle)));
                self.guard(e, self.dialect.pattern_test(subject, pattern))
            }
            ExprKind::IEq(a, b) => {
                let (a, b) = (self.value(a)?, self.value(b)?);
                let (a, b) = (self.dialect.ascii_lower(a), self.dialect.ascii_lower(b));
                let sql = binary(self.dialect.bytewise(a, false), BinaryOperator::Eq, b);
                self.guard(e, sql)
            }
            ExprKind::In { needle, haystack } => self.membership(e, needle, haystack)?,
            ExprKind::IsNull { expr, negated } => {
                let inner = Box::new(self.value(expr)?);
                if *negated { Expr::IsNotNull(inner) } else { Expr::IsNull(inner) }
            }
            ExprKind::Agg { func, .. } => {
                return Err(SqlError::Unsupported(format!("aggregate `{}` inside a filter", func.name())));
            }
            // A boolean column, literal or parameter used as the condition itself.
            ExprKind::Field(_) | ExprKind::Lit(_) | ExprKind::Param(_) => self.value(e)?,
            ExprKind::Neg(_) | ExprKind::Arith { .. } | ExprKind::Lower(_) | ExprKind::Len(_) => {
                return Err(SqlError::Unsupported("a filter must be a boolean expression".into()));
            }
        };
        Ok(sql)
    }

    /// Rust says a comparison whose operand panicked (division by zero) is false,
    /// in a `!` too; SQL would make it NULL, which `NOT` keeps NULL. `COALESCE`
    /// turns that NULL into false at the comparison itself.
    fn guard(&self, e: &IrExpr, sql: Expr) -> Expr {
        if self.may_fault(e) { function("COALESCE", vec![sql, ast::boolean(false)]) } else { sql }
    }

    fn comparison(&mut self, op: CmpOp, lhs: &IrExpr, rhs: &IrExpr) -> Result<Expr, SqlError> {
        let whole = IrExpr::cmp(op, lhs.clone(), rhs.clone(), lhs.span.join(rhs.span));
        if matches!(op, CmpOp::Eq | CmpOp::Ne) {
            // `x == None` is `x IS NULL`: clearer than a null-safe comparison with a
            // NULL placeholder, and nothing to bind.
            for (side, other) in [(lhs, rhs), (rhs, lhs)] {
                if self.constant(side)?.is_some_and(|v| v.is_null()) {
                    let other = Box::new(self.value(other)?);
                    return Ok(if op == CmpOp::Eq { Expr::IsNull(other) } else { Expr::IsNotNull(other) });
                }
            }
            if self.optional(lhs)? || self.optional(rhs)? {
                let text = self.type_of(lhs) == Some(Type::Text) || self.type_of(rhs) == Some(Type::Text);
                let (a, b) = self.operands(lhs, rhs, text, false)?;
                return Ok(self.guard(&whole, self.dialect.null_safe_eq(a, b, op == CmpOp::Ne)));
            }
        }
        let text = self.type_of(lhs) == Some(Type::Text) || self.type_of(rhs) == Some(Type::Text);
        let ordering = !matches!(op, CmpOp::Eq | CmpOp::Ne);
        let (a, b) = self.operands(lhs, rhs, text, ordering)?;
        let op = match op {
            CmpOp::Eq => BinaryOperator::Eq,
            CmpOp::Ne => BinaryOperator::NotEq,
            CmpOp::Lt => BinaryOperator::Lt,
            CmpOp::Le => BinaryOperator::LtEq,
            CmpOp::Gt => BinaryOperator::Gt,
            CmpOp::Ge => BinaryOperator::GtEq,
        };
        Ok(self.guard(&whole, binary(comparand(a), op, comparand(b))))
    }

    /// Both operands of a comparison. For text, the first operand that is not a
    /// bare value is made byte-wise: one side decides the comparison's collation,
    /// and a placeholder keeps the type the database infers from the column.
    fn operands(&mut self, lhs: &IrExpr, rhs: &IrExpr, text: bool, ordering: bool) -> Result<(Expr, Expr), SqlError> {
        let (mut a, mut b) = (self.value(lhs)?, self.value(rhs)?);
        if text {
            let is_value = |e: &IrExpr| matches!(e.kind, ExprKind::Lit(_) | ExprKind::Param(_));
            if is_value(lhs) && !is_value(rhs) {
                b = self.dialect.bytewise(b, ordering);
            } else {
                a = self.dialect.bytewise(a, ordering);
            }
        }
        Ok((a, b))
    }

    fn membership(&mut self, whole: &IrExpr, needle: &IrExpr, haystack: &Haystack) -> Result<Expr, SqlError> {
        let optional = self.optional(needle)?;
        let text = self.type_of(needle) == Some(Type::Text);
        let needle_sql = self.value(needle)?;
        let needle_sql = if text { self.dialect.bytewise(needle_sql, false) } else { needle_sql };
        // Items as values when every item is one (the usual case), else as
        // expressions (`c.x in (c.y, 3)`).
        let items: Vec<Result<Value, &IrExpr>> = match haystack {
            Haystack::Param(name) => match self.param(name)? {
                Value::List(items) => items.iter().cloned().map(Ok).collect(),
                _ => return Err(SqlError::NotAList(name.clone())),
            },
            Haystack::Items(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.push(self.constant(item)?.ok_or(item));
                }
                out
            }
        };
        if optional {
            // `IN` is `=` per item, which is never true for NULL: an `Option` needle
            // is compared null-safely item by item instead.
            let mut parts = Vec::with_capacity(items.len());
            for item in items {
                let item = match item {
                    Ok(v) => self.bind(v),
                    Err(e) => self.value(e)?,
                };
                parts.push(self.dialect.null_safe_eq(needle_sql.clone(), item, false));
            }
            return Ok(ast::fold(parts, BinaryOperator::Or).map_or_else(constant_false, nested));
        }
        // A non-optional needle never equals `None`; leaving NULL out of the list
        // keeps `NOT IN` true for it (SQL's `x NOT IN (NULL)` is NULL).
        let items: Vec<_> = items.into_iter().filter(|i| !matches!(i, Ok(Value::Null))).collect();
        if items.is_empty() {
            return Ok(constant_false());
        }
        let mut list = Vec::with_capacity(items.len());
        for item in items {
            list.push(match item {
                Ok(v) => self.bind(v),
                Err(e) => self.value(e)?,
            });
        }
        let sql = Expr::In {
            expr: Box::new(operand(needle_sql)),
            target: sqlparser::ast::InTarget::List(list),
            negated: false,
            global: false,
        };
        Ok(self.guard(whole, sql))
    }

    /// A scalar expression.
    pub(crate) fn value(&mut self, e: &IrExpr) -> Result<Expr, SqlError> {
        Ok(match &e.kind {
            ExprKind::Field(f) => match self.schema.column_index(f) {
                Some(i) => self.column(i),
                None => return Err(SqlError::Unsupported(format!("`{f}` is not a field of {}", self.schema.model))),
            },
            ExprKind::Lit(v) => self.bind(v.clone()),
            ExprKind::Param(p) => {
                let v = self.param(p)?.clone();
                if matches!(v, Value::List(_)) {
                    return Err(SqlError::Unsupported(format!("list parameter `{p}` outside `in`")));
                }
                self.bind(v)
            }
            ExprKind::Neg(x) => unary(UnaryOperator::Minus, operand(self.value(x)?)),
            ExprKind::Arith { op, lhs, rhs } => {
                let int = self.type_of(e) == Some(Type::Int);
                let a = self.value(lhs)?;
                let b = self.value(rhs)?;
                let literal_non_zero = matches!(&rhs.kind, ExprKind::Lit(Value::Int(i)) if *i != 0);
                // Integer division by zero panics in Rust, errors in PostgreSQL:
                // `NULLIF` makes it NULL everywhere, and `guard` makes the
                // comparison false.
                let b = if int && matches!(op, ArithOp::Div | ArithOp::Rem) && !literal_non_zero {
                    function("NULLIF", vec![b, ast::number(0)])
                } else {
                    b
                };
                match op {
                    ArithOp::Add => binary(operand(a), BinaryOperator::Plus, operand(b)),
                    ArithOp::Sub => binary(operand(a), BinaryOperator::Minus, operand(b)),
                    ArithOp::Mul => binary(operand(a), BinaryOperator::Multiply, operand(b)),
                    ArithOp::Div if int => self.dialect.int_div(a, b),
                    ArithOp::Div => binary(operand(a), BinaryOperator::Divide, operand(b)),
                    ArithOp::Rem if int => binary(operand(a), BinaryOperator::Modulo, operand(b)),
                    ArithOp::Rem => {
                        return Err(SqlError::Unsupported(
                            "`%` on floats: SQL's `%` is defined for integers only".into(),
                        ));
                    }
                }
            }
            ExprKind::Lower(x) => {
                let inner = self.value(x)?;
                function(self.dialect.unicode_lower(), vec![inner])
            }
            ExprKind::Len(x) => {
                let inner = self.value(x)?;
                self.dialect.byte_length(inner)
            }
            ExprKind::Agg { func, .. } => {
                return Err(SqlError::Unsupported(format!("aggregate `{}` inside an expression", func.name())));
            }
            _ => nested(self.predicate(e)?),
        })
    }

    /// The projection of an aggregate view: AVG and SUM over floating point.
    pub(crate) fn aggregate(&mut self, agg: &Aggregate) -> Result<Expr, SqlError> {
        let name = match agg.func {
            AggFunc::Count => "COUNT",
            AggFunc::Sum => "SUM",
            AggFunc::Min => "MIN",
            AggFunc::Max => "MAX",
            AggFunc::Avg => "AVG",
        };
        let Some(arg) = &agg.arg else {
            return match agg.func {
                AggFunc::Count => Ok(ast::count_star()),
                _ => Err(SqlError::Unsupported(format!("`{}()` needs an argument", agg.func.name()))),
            };
        };
        let arg_sql = self.value(arg)?;
        let arg_sql = match agg.func {
            // SQLite's SUM of integers is an integer (and an error on overflow),
            // MySQL's AVG a DECIMAL, PostgreSQL's AVG of BIGINT a NUMERIC: casting the
            // argument makes all three the `f64` the API returns.
            AggFunc::Sum | AggFunc::Avg => cast(arg_sql, self.dialect.float_type()),
            _ => arg_sql,
        };
        Ok(function(name, vec![arg_sql]))
    }
}

/// A comparison operand: arithmetic binds tighter than comparison in every dialect,
/// anything else not atomic is parenthesised.
fn comparand(e: Expr) -> Expr {
    match e {
        Expr::BinaryOp {
            op:
                BinaryOperator::Plus
                | BinaryOperator::Minus
                | BinaryOperator::Multiply
                | BinaryOperator::Divide
                | BinaryOperator::MyIntegerDivide
                | BinaryOperator::Modulo,
            ..
        }
        | Expr::UnaryOp { op: UnaryOperator::Minus, .. }
        | Expr::Collate { .. } => e,
        other => operand(other),
    }
}
