//! Lowering checked IR expressions to sqlparser expressions, binding every value.
//!
//! The emitter walks the IR in the order its SQL text reads, so placeholders are
//! numbered (and `params` filled) left to right. Everything that differs between
//! dialects goes through [`SqlDialect`].
//!
//! Arithmetic follows `eval`'s rules: a result Rust could not compute (integer
//! overflow, division by zero, `i64::MIN / -1`) or a float result that is not
//! finite is *undefined*, and a test reading it is false. The SQL of a test over
//! arithmetic is therefore
//!
//! ```sql
//! CASE WHEN (<check 1>) IS NOT TRUE THEN FALSE … ELSE <test> END
//! ```
//!
//! with one check per arithmetic node that may be undefined, children before
//! parents, each deciding from its (already checked) operands whether the node is
//! defined without computing anything that could overflow or raise an error
//! (`b > 0 AND a <= i64::MAX - b` for `a + b`). The values themselves are then
//! plain SQL arithmetic, reached only where every check held. The order matters on
//! PostgreSQL, which folds constant subexpressions while planning (bound values
//! are constants in a custom plan): it drops `CASE` arms whose condition folds to
//! false before folding their results and stops at one that folds to true, so an
//! overflowing constant is never folded once the check before it says so. A check
//! repeats its operands: each copy is emitted afresh, so positional placeholders
//! (`?`) stay in text order, and [`ARITH_BUDGET`] bounds the growth.

use sqlparser::ast::{BinaryOperator, Expr, UnaryOperator};

use super::SqlError;
use super::ast::{self, binary, case, cast, column, constant_false, function, nested, number, operand, unary};
use super::dialect::{SqlDialect, float_remainder};
use crate::check::Aggregate;
use crate::ir::{AggFunc, ArithOp, CmpOp, Expr as IrExpr, ExprKind, Haystack};
use crate::params::Params;
use crate::schema::Schema;
use crate::value::{Type, Value};

/// How many arithmetic nodes one statement may emit. Checks repeat their
/// operands, so SQL grows with nesting (quadratically for `a + b + c + …`, faster
/// for nested float products on PostgreSQL); beyond this the filter is refused
/// rather than turned into megabytes of SQL.
pub(crate) const ARITH_BUDGET: usize = 20_000;

/// `in` lists longer than this bind as one parameter where the dialect can
/// ([`SqlDialect::in_bound_list`]); shorter ones keep a placeholder per element.
pub(crate) const LONG_IN_LIST: usize = 100;

/// Builds SQL expressions for one statement and collects its bound values.
pub(crate) struct Emitter<'a> {
    pub(crate) dialect: &'a dyn SqlDialect,
    pub(crate) schema: &'a Schema,
    params: &'a dyn Params,
    /// The bound values, in placeholder order.
    pub(crate) values: Vec<Value>,
    /// Arithmetic nodes emitted so far (see [`ARITH_BUDGET`]).
    arith_nodes: usize,
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
        Emitter { dialect, schema, params, values: Vec::new(), arith_nodes: 0 }
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
        let ty = self.schema.columns[i].ty;
        if self.dialect.bytewise_on_values() {
            let ph = self.bind(value);
            return binary(col, BinaryOperator::Eq, self.text_side(ph, ty, false));
        }
        let col = self.text_side(col, ty, false);
        let ph = self.bind(value);
        binary(col, BinaryOperator::Eq, ph)
    }

    /// `column IS NOT DISTINCT FROM ?`: the column holds `value`, nulls equal,
    /// text compared byte-wise. Its text is the same whatever the value.
    pub(crate) fn column_unchanged(&mut self, i: usize, value: Value) -> Expr {
        let col = self.column(i);
        let ty = self.schema.columns[i].ty;
        let ph = self.bind(value);
        let (col, ph) = if self.dialect.bytewise_on_values() {
            (col, self.text_side(ph, ty, false))
        } else {
            (self.text_side(col, ty, false), ph)
        };
        Expr::IsNotDistinctFrom(Box::new(operand(col)), Box::new(operand(ph)))
    }

    /// `column IN (?, …)` over values for the column `i`, comparing text byte-wise
    /// (on the column, or on each value: [`SqlDialect::bytewise_on_values`]).
    pub(crate) fn column_in_values(&mut self, i: usize, values: Vec<Value>) -> Expr {
        let col = self.column(i);
        let ty = self.schema.columns[i].ty;
        if values.is_empty() {
            return constant_false();
        }
        if self.dialect.bytewise_on_values() {
            let mut list = Vec::with_capacity(values.len());
            for value in values {
                let ph = self.bind(value);
                list.push(self.text_side(ph, ty, false));
            }
            return Expr::In {
                expr: Box::new(operand(col)),
                target: sqlparser::ast::InTarget::List(list),
                negated: false,
                global: false,
            };
        }
        let col = self.text_side(col, ty, false);
        self.in_values(col, values)
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

    /// Whether an arithmetic node may be undefined for some operands: every one but
    /// an integer `/` or `%` by a literal other than 0 and -1, and a `-` that cannot
    /// fail (of a literal other than `i64::MIN` or ±inf, of `len`, or of a float
    /// arithmetic result, which its own check already found finite).
    fn may_be_undefined(&self, e: &IrExpr) -> bool {
        let float = self.type_of(e) == Some(Type::Float);
        match &e.kind {
            ExprKind::Arith { op: ArithOp::Div | ArithOp::Rem, rhs, .. } if !float => {
                !matches!(&rhs.kind, ExprKind::Lit(Value::Int(i)) if *i != 0 && *i != -1)
            }
            ExprKind::Arith { .. } => true,
            ExprKind::Neg(x) => match &x.kind {
                ExprKind::Lit(Value::Int(i)) => *i == i64::MIN,
                ExprKind::Lit(Value::Float(v)) => !v.is_finite(),
                ExprKind::Len(_) => false,
                ExprKind::Arith { .. } | ExprKind::Neg(_) => !float,
                _ => true,
            },
            _ => false,
        }
    }

    /// The arithmetic nodes under the value `e` that may be undefined, children
    /// before parents (tests nested in a value guard themselves).
    fn undefined_candidates<'e>(&self, e: &'e IrExpr, out: &mut Vec<&'e IrExpr>) {
        match &e.kind {
            ExprKind::Arith { lhs, rhs, .. } => {
                self.undefined_candidates(lhs, out);
                self.undefined_candidates(rhs, out);
            }
            ExprKind::Neg(x) | ExprKind::Lower(x) | ExprKind::Len(x) => self.undefined_candidates(x, out),
            _ => return,
        }
        if self.may_be_undefined(e) {
            out.push(e);
        }
    }

    /// `build`'s SQL where every arithmetic node under `operands` is defined, and
    /// `otherwise` (FALSE for a test, NULL for a value) where one is not:
    /// `CASE WHEN (<check>) IS NOT TRUE THEN <otherwise> … ELSE <build> END`.
    fn guarded(
        &mut self,
        operands: &[&IrExpr],
        otherwise: &Expr,
        build: impl FnOnce(&mut Self) -> Result<Expr, SqlError>,
    ) -> Result<Expr, SqlError> {
        let mut nodes = Vec::new();
        for e in operands {
            self.undefined_candidates(e, &mut nodes);
        }
        if nodes.is_empty() {
            return build(self);
        }
        let mut arms = Vec::with_capacity(nodes.len());
        for node in nodes {
            let check = self.defined(node)?;
            arms.push((Expr::IsNotTrue(Box::new(operand(check))), otherwise.clone()));
        }
        let result = build(self)?;
        Ok(case(arms, Some(result)))
    }

    /// A condition TRUE exactly when the arithmetic node `e`, whose operands are
    /// defined, is defined too; it computes nothing that could overflow or fail.
    fn defined(&mut self, e: &IrExpr) -> Result<Expr, SqlError> {
        let float = self.type_of(e) == Some(Type::Float);
        let dialect = self.dialect;
        match &e.kind {
            ExprKind::Neg(x) if float => dialect.float_is_finite(&mut |_| self.arith_operand(x, Type::Float)),
            ExprKind::Neg(x) => {
                let a = self.arith_operand(x, Type::Int)?;
                Ok(binary(comparand(a), BinaryOperator::NotEq, int_min()))
            }
            ExprKind::Arith { op, lhs, rhs } if float => {
                dialect.float_finite(*op, &mut |i| self.arith_operand(if i == 0 { lhs } else { rhs }, Type::Float))
            }
            ExprKind::Arith { op, lhs, rhs } => self.int_defined(*op, lhs, rhs),
            _ => Ok(ast::boolean(true)),
        }
    }

    /// Rust's `checked_*` for i64 as a condition over `a` and `b`, built so that no
    /// part of it overflows: each bound is computed only in the arm where it fits.
    /// Copies of `a` and `b` are emitted in text order.
    fn int_defined(&mut self, op: ArithOp, lhs: &IrExpr, rhs: &IrExpr) -> Result<Expr, SqlError> {
        use BinaryOperator::{And, Eq, Gt, GtEq, Lt, LtEq, Minus, NotEq, Or, Plus};
        let int = Type::Int;
        let zero = || number(0);
        let cmp = |a: Expr, op: BinaryOperator, b: Expr| binary(comparand(a), op, comparand(b));
        Ok(match op {
            // b > 0: a + b <= MAX  <=>  a <= MAX - b (no overflow for b > 0);
            // b <= 0: a + b >= MIN  <=>  a >= MIN - b (no overflow for b <= 0).
            ArithOp::Add | ArithOp::Sub => {
                let (pos_bound, pos_op, neg_bound, neg_op) = if op == ArithOp::Add {
                    (int_max(), Minus, int_min(), Minus)
                } else {
                    (int_min(), Plus, int_max(), Plus)
                };
                let (pos_cmp, neg_cmp) = if op == ArithOp::Add { (LtEq, GtEq) } else { (GtEq, LtEq) };
                let b = self.arith_operand(rhs, int)?;
                let when = cmp(b, Gt, zero());
                let a = self.arith_operand(lhs, int)?;
                let b = self.arith_operand(rhs, int)?;
                let then = cmp(a, pos_cmp, binary(pos_bound, pos_op, operand(b)));
                let a = self.arith_operand(lhs, int)?;
                let b = self.arith_operand(rhs, int)?;
                let otherwise = cmp(a, neg_cmp, binary(neg_bound, neg_op, operand(b)));
                case(vec![(when, then)], Some(otherwise))
            }
            // a * b fits exactly when a lies between the two quotients of the bounds
            // by b (truncating division rounds toward a's allowed range); b = -1 is
            // apart because MIN / -1 itself overflows.
            ArithOp::Mul => {
                let mut arms = Vec::with_capacity(3);
                let b = self.arith_operand(rhs, int)?;
                let when = cmp(b, Gt, zero());
                let then = self.between_quotients(lhs, rhs, int_min(), int_max())?;
                arms.push((when, then));
                let b = self.arith_operand(rhs, int)?;
                let when = cmp(b, Eq, minus_one());
                let a = self.arith_operand(lhs, int)?;
                arms.push((when, cmp(a, NotEq, int_min())));
                let b = self.arith_operand(rhs, int)?;
                let when = cmp(b, Lt, zero());
                let then = self.between_quotients(lhs, rhs, int_max(), int_min())?;
                arms.push((when, then));
                case(arms, Some(ast::boolean(true)))
            }
            // Division and remainder fail for b = 0, and for MIN / -1 (MIN % -1 too,
            // in Rust's `checked_rem`).
            ArithOp::Div | ArithOp::Rem => {
                let b = self.arith_operand(rhs, int)?;
                let non_zero = cmp(b, NotEq, zero());
                let b = self.arith_operand(rhs, int)?;
                let a = self.arith_operand(lhs, int)?;
                let no_overflow = nested(binary(cmp(b, NotEq, minus_one()), Or, cmp(a, NotEq, int_min())));
                binary(non_zero, And, no_overflow)
            }
        })
    }

    /// `a >= low / b AND a <= high / b` (integer division), for `a * b` with b != 0, -1.
    fn between_quotients(&mut self, a: &IrExpr, b: &IrExpr, low: Expr, high: Expr) -> Result<Expr, SqlError> {
        let x = self.arith_operand(a, Type::Int)?;
        let y = self.arith_operand(b, Type::Int)?;
        let lower = binary(comparand(x), BinaryOperator::GtEq, operand(self.dialect.int_div(low, y)));
        let x = self.arith_operand(a, Type::Int)?;
        let y = self.arith_operand(b, Type::Int)?;
        let upper = binary(comparand(x), BinaryOperator::LtEq, operand(self.dialect.int_div(high, y)));
        Ok(binary(lower, BinaryOperator::And, upper))
    }

    /// An operand of arithmetic: a bound value typed for the dialect, else the value.
    fn arith_operand(&mut self, e: &IrExpr, ty: Type) -> Result<Expr, SqlError> {
        match &e.kind {
            ExprKind::Lit(_) | ExprKind::Param(_) => {
                let v = self.value(e)?;
                Ok(self.dialect.typed(v, self.type_of(e).unwrap_or(ty)))
            }
            _ => self.value(e),
        }
    }

    /// A bound value typed for the dialect (its context gives no type), else the value.
    fn typed_value(&mut self, e: &IrExpr) -> Result<Expr, SqlError> {
        match (&e.kind, self.type_of(e)) {
            (ExprKind::Lit(v), _) if v.is_null() => self.value(e),
            (ExprKind::Lit(_) | ExprKind::Param(_), Some(ty)) => {
                let v = self.value(e)?;
                Ok(self.dialect.typed(v, ty))
            }
            _ => self.value(e),
        }
    }

    /// Arithmetic as plain SQL, for where every check of [`Emitter::guarded`] held.
    fn arithmetic(&mut self, e: &IrExpr) -> Result<Expr, SqlError> {
        self.arith_nodes += 1;
        if self.arith_nodes > ARITH_BUDGET {
            return Err(SqlError::Unsupported(format!(
                "the arithmetic is too large to express in SQL (over {ARITH_BUDGET} operations once its overflow \
                 checks are written out); split it into simpler comparisons"
            )));
        }
        let ty = if self.type_of(e) == Some(Type::Float) { Type::Float } else { Type::Int };
        Ok(match &e.kind {
            ExprKind::Neg(x) if ty == Type::Int => {
                let a = self.arith_operand(x, ty)?;
                self.dialect.int_neg(a)
            }
            ExprKind::Neg(x) => unary(UnaryOperator::Minus, operand(self.arith_operand(x, ty)?)),
            ExprKind::Arith { op, lhs, rhs } if ty == Type::Float => {
                let dialect = self.dialect;
                dialect.float_arith(*op, &mut |i| self.arith_operand(if i == 0 { lhs } else { rhs }, Type::Float))?
            }
            ExprKind::Arith { op, lhs, rhs } => {
                let a = self.arith_operand(lhs, ty)?;
                let b = self.arith_operand(rhs, ty)?;
                match op {
                    ArithOp::Add => binary(operand(a), BinaryOperator::Plus, operand(b)),
                    ArithOp::Sub => binary(operand(a), BinaryOperator::Minus, operand(b)),
                    ArithOp::Mul => binary(operand(a), BinaryOperator::Multiply, operand(b)),
                    ArithOp::Div => self.dialect.int_div(a, b),
                    ArithOp::Rem => binary(operand(a), BinaryOperator::Modulo, operand(b)),
                }
            }
            _ => self.value(e)?,
        })
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
                // The subject is text: no arithmetic to check.
                let subject = self.value(subject)?;
                let pattern = self.bind(Value::Text(self.dialect.match_pattern(*op, &needle)));
                self.dialect.pattern_test(subject, pattern)
            }
            ExprKind::IEq(a, b) => {
                let (a, b) = (self.value(a)?, self.value(b)?);
                let (a, b) = (self.dialect.ascii_lower(a), self.dialect.ascii_lower(b));
                binary(self.dialect.bytewise(a, false), BinaryOperator::Eq, b)
            }
            ExprKind::In { needle, haystack } => {
                let mut operands = vec![&**needle];
                if let Haystack::Items(items) = haystack {
                    operands.extend(items);
                }
                self.guarded(&operands, &ast::boolean(false), |s| s.membership(needle, haystack))?
            }
            ExprKind::IsNull { expr, negated } => self.guarded(&[expr], &ast::boolean(false), |s| {
                let inner = Box::new(s.value(expr)?);
                Ok(if *negated { Expr::IsNotNull(inner) } else { Expr::IsNull(inner) })
            })?,
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

    /// Rust says a comparison whose operand is undefined (it would have panicked) is
    /// false, in a `!` too; [`Emitter::guarded`] makes it FALSE (not NULL, which
    /// `NOT` would keep NULL) at the comparison itself.
    fn comparison(&mut self, op: CmpOp, lhs: &IrExpr, rhs: &IrExpr) -> Result<Expr, SqlError> {
        self.guarded(&[lhs, rhs], &ast::boolean(false), |s| s.plain_comparison(op, lhs, rhs))
    }

    fn plain_comparison(&mut self, op: CmpOp, lhs: &IrExpr, rhs: &IrExpr) -> Result<Expr, SqlError> {
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
                return Ok(self.dialect.null_safe_eq(a, b, op == CmpOp::Ne));
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
        Ok(binary(comparand(a), op, comparand(b)))
    }

    /// Both operands of a comparison. For text, the first operand that is not a
    /// bare value is made byte-wise: one side decides the comparison's collation,
    /// and a placeholder keeps the type the database infers from the column. With
    /// no column on either side, nothing gives the placeholders a type: they are
    /// typed for the dialect.
    fn operands(&mut self, lhs: &IrExpr, rhs: &IrExpr, text: bool, ordering: bool) -> Result<(Expr, Expr), SqlError> {
        let (mut a, mut b) = if has_column(lhs) || has_column(rhs) {
            (self.value(lhs)?, self.value(rhs)?)
        } else {
            (self.typed_value(lhs)?, self.typed_value(rhs)?)
        };
        if text {
            let is_value = |e: &IrExpr| matches!(e.kind, ExprKind::Lit(_) | ExprKind::Param(_));
            let (lhs_value, rhs_value) = (is_value(lhs), is_value(rhs));
            // The side that names the collation: the value where the dialect wants
            // it there (the column stays bare for its index), else the other side.
            let on_rhs = if self.dialect.bytewise_on_values() { rhs_value } else { lhs_value && !rhs_value };
            if on_rhs {
                b = self.dialect.bytewise(b, ordering);
            } else {
                a = self.dialect.bytewise(a, ordering);
            }
        }
        Ok((a, b))
    }

    fn membership(&mut self, needle: &IrExpr, haystack: &Haystack) -> Result<Expr, SqlError> {
        let optional = self.optional(needle)?;
        let text = self.type_of(needle) == Some(Type::Text);
        let needle_sql = if has_column(needle) { self.value(needle)? } else { self.typed_value(needle)? };
        // Text compares byte-wise: the needle names the collation, or, where the
        // dialect names it on values, each item does (`membership_items`).
        let collate_items = text && self.dialect.bytewise_on_values();
        let needle_sql = if text && !collate_items { self.dialect.bytewise(needle_sql, false) } else { needle_sql };
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
        if items.len() > LONG_IN_LIST && items.iter().all(Result::is_ok) {
            // One parameter for the whole list (the SQL text no longer grows with
            // it). NULLs leave the bound list: for an `Option` needle, `COALESCE`
            // turns SQL's NULL (the needle is `None`) into whether the list holds
            // `None`; a needle that is not an `Option` never equals `None`.
            let has_null = items.iter().any(|i| matches!(i, Ok(Value::Null)));
            let dialect = self.dialect;
            let ty = self.type_of(needle);
            let list = |items: &[Result<Value, &IrExpr>]| {
                Value::List(items.iter().filter_map(|i| i.as_ref().ok()).filter(|v| !v.is_null()).cloned().collect())
            };
            let mut bind_list = || self.bind(list(&items));
            if let Some(member) = dialect.in_bound_list(needle_sql.clone(), ty, &mut bind_list) {
                return Ok(if optional { function("COALESCE", vec![member, ast::boolean(has_null)]) } else { member });
            }
            // No one-parameter form in this dialect: one placeholder per item.
        }
        self.membership_items(needle_sql, items, optional, collate_items)
    }

    /// `needle` among `items`, one placeholder per item.
    fn membership_items(
        &mut self,
        needle_sql: Expr,
        items: Vec<Result<Value, &IrExpr>>,
        optional: bool,
        collate_items: bool,
    ) -> Result<Expr, SqlError> {
        let collate = |s: &Self, e: Expr| if collate_items { s.dialect.bytewise(e, false) } else { e };
        if optional {
            // `IN` is `=` per item, which is never true for NULL: an `Option` needle
            // is compared null-safely item by item instead.
            let mut parts = Vec::with_capacity(items.len());
            for item in items {
                let item = match item {
                    Ok(v) => self.bind(v),
                    Err(e) => self.value(e)?,
                };
                let item = collate(self, item);
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
            let item = match item {
                Ok(v) => self.bind(v),
                Err(e) => self.value(e)?,
            };
            list.push(collate(self, item));
        }
        Ok(Expr::In {
            expr: Box::new(operand(needle_sql)),
            target: sqlparser::ast::InTarget::List(list),
            negated: false,
            global: false,
        })
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
            ExprKind::Neg(_) => self.arithmetic(e)?,
            ExprKind::Arith { op: ArithOp::Rem, .. } if self.type_of(e) == Some(Type::Float) => {
                return Err(float_remainder());
            }
            ExprKind::Arith { .. } => self.arithmetic(e)?,
            ExprKind::Lower(x) => {
                let inner = self.value(x)?;
                let dialect = self.dialect;
                dialect.lower(inner, &mut |v| self.bind(v))
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
        // An undefined value (overflow) is NULL, which aggregates skip, as `eval::value`.
        let arg_sql = self.guarded(&[arg], &ast::null(), |s| s.value(arg))?;
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

/// Whether a column occurs in `e` (and so gives the database a type to infer
/// placeholders from).
fn has_column(e: &IrExpr) -> bool {
    let mut found = false;
    e.visit(&mut |n| found |= matches!(n.kind, ExprKind::Field(_)));
    found
}

/// `i64::MAX` as an SQL constant.
fn int_max() -> Expr {
    number(i64::MAX.unsigned_abs())
}

/// `i64::MIN` as `(-9223372036854775807 - 1)`: PostgreSQL reads
/// `-9223372036854775808` as minus a NUMERIC (the digits exceed bigint), not bigint.
fn int_min() -> Expr {
    nested(binary(unary(UnaryOperator::Minus, int_max()), BinaryOperator::Minus, number(1)))
}

fn minus_one() -> Expr {
    unary(UnaryOperator::Minus, number(1))
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
