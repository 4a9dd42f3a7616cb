//! The random queries of the differential test: the oracle's own predicate language
//! (typed expressions over [`Row`]'s columns), its meaning in Rust (`ev_*`, written
//! independently of memdex's evaluator), its rendering to the text form with bound
//! parameters, and the proptest generators of rows, queries and cases.

use memdex::Value;
use memdex::grammar::ir::{ArithOp, CmpOp, StrOp};
use proptest::prelude::*;
use proptest::sample::select;

use super::*;

// ---------------------------------------------------------------------------
// The predicate language, as the oracle sees it.
// ---------------------------------------------------------------------------

/// A value written either as a literal or as a bound parameter.
#[derive(Clone, Debug)]
pub struct Leaf<V> {
    pub v: V,
    pub param: bool,
}

#[derive(Clone, Debug)]
pub enum I {
    Col(usize),
    Leaf(Leaf<i64>),
    Arith(ArithOp, Box<I>, Box<I>),
    Neg(Box<I>),
    Len(usize),
}

#[derive(Clone, Debug)]
pub enum F {
    Col,
    Leaf(Leaf<f64>),
    Arith(ArithOp, Box<F>, Box<F>),
    Neg(Box<F>),
}

#[derive(Clone, Debug)]
pub enum T {
    Col(usize),
    Lower(usize),
    Leaf(Leaf<String>),
}

#[derive(Clone, Debug)]
pub enum List<V> {
    /// A literal display: `[a, b]` or `(a, b)` (`bracket`), items literal or bound.
    Items(Vec<Leaf<V>>, bool),
    /// One parameter bound to a list.
    Param(Vec<V>),
}

#[derive(Clone, Debug)]
pub enum B {
    And(Vec<B>),
    Or(Vec<B>),
    Not(Box<B>),
    CmpI(CmpOp, I, I),
    CmpF(CmpOp, F, F),
    CmpT(CmpOp, T, T),
    /// `r.grp == v` / `!=`; `None` is the literal `None`.
    OptI {
        ne: bool,
        v: Option<Leaf<i64>>,
    },
    /// `r.note == v` / `!=`.
    OptT {
        ne: bool,
        v: Leaf<String>,
    },
    IsNull {
        col: usize,
        negated: bool,
    },
    Str(StrOp, T, Leaf<String>),
    IEq(T, Leaf<String>),
    InI {
        col: usize,
        list: List<i64>,
        negated: bool,
    },
    InT {
        col: usize,
        list: List<String>,
        negated: bool,
    },
    /// 0: `r.flag`, 1: `r.flag == True`, 2: `r.flag != False`.
    Flag(u8),
    /// `r.at <op> p`, an instant (microseconds since 1970) bound as a parameter:
    /// the text form has no timestamp literals.
    CmpAt(CmpOp, i64),
    /// `r.blob <op> p`, bytes bound as a parameter.
    CmpBlob(CmpOp, Vec<u8>),
    /// `r.ext == p` / `!=`, a UUID bound as a parameter.
    EqExt {
        ne: bool,
        v: [u8; 16],
    },
    /// `r.ext [not] in p`, a list of UUIDs bound as one parameter.
    InExt {
        list: Vec<[u8; 16]>,
        negated: bool,
    },
}

// ---------------------------------------------------------------------------
// The oracle: Rust's meaning of each form, over the row struct.
// ---------------------------------------------------------------------------

pub fn int_col(r: &Row, c: usize) -> i64 {
    match c {
        ID => r.id,
        CAT => r.cat,
        _ => r.qty,
    }
}

pub fn text_col(r: &Row, c: usize) -> &str {
    if c == NAME { &r.name } else { &r.tag }
}

/// `None` where Rust would panic (overflow, division by zero).
pub fn ev_i(e: &I, r: &Row) -> Option<i64> {
    match e {
        I::Col(c) => Some(int_col(r, *c)),
        I::Leaf(l) => Some(l.v),
        I::Arith(op, a, b) => int_arith(*op, ev_i(a, r)?, ev_i(b, r)?),
        I::Neg(a) => ev_i(a, r)?.checked_neg(),
        I::Len(c) => i64::try_from(text_col(r, *c).len()).ok(),
    }
}

/// `None` where a float arithmetic result is not finite (memdex's rule: undefined,
/// like integer overflow). Stored and literal infinities are values.
pub fn ev_f(e: &F, r: &Row) -> Option<f64> {
    let finite = |x: f64| x.is_finite().then_some(x);
    match e {
        F::Col => Some(r.price),
        F::Leaf(l) => Some(l.v),
        F::Arith(op, a, b) => finite(float_arith(*op, ev_f(a, r)?, ev_f(b, r)?)),
        F::Neg(a) => finite(-ev_f(a, r)?),
    }
}

pub fn ev_t(e: &T, r: &Row) -> String {
    match e {
        T::Col(c) => text_col(r, *c).to_owned(),
        T::Lower(c) => text_col(r, *c).to_lowercase(),
        T::Leaf(l) => l.v.clone(),
    }
}

pub fn list_values<V: Clone>(l: &List<V>) -> Vec<V> {
    match l {
        List::Items(items, _) => items.iter().map(|i| i.v.clone()).collect(),
        List::Param(v) => v.clone(),
    }
}

pub fn ev_b(e: &B, r: &Row) -> bool {
    match e {
        B::And(v) => v.iter().all(|b| ev_b(b, r)),
        B::Or(v) => v.iter().any(|b| ev_b(b, r)),
        B::Not(b) => !ev_b(b, r),
        // A comparison whose operand would have panicked is false (DESIGN: eval).
        B::CmpI(op, a, b) => match (ev_i(a, r), ev_i(b, r)) {
            (Some(a), Some(b)) => cmp_holds(*op, a, b),
            _ => false,
        },
        B::CmpF(op, a, b) => match (ev_f(a, r), ev_f(b, r)) {
            (Some(a), Some(b)) => cmp_holds(*op, a, b),
            _ => false,
        },
        B::CmpT(op, a, b) => cmp_holds(*op, ev_t(a, r).as_bytes(), ev_t(b, r).as_bytes()),
        B::OptI { ne, v } => (r.grp == v.as_ref().map(|l| l.v)) != *ne,
        B::OptT { ne, v } => (r.note.as_deref() == Some(v.v.as_str())) != *ne,
        B::IsNull { col, negated } => {
            let null = if *col == GRP { r.grp.is_none() } else { r.note.is_none() };
            null != *negated
        }
        B::Str(op, s, p) => str_test(*op, &ev_t(s, r), &p.v),
        B::IEq(s, p) => ev_t(s, r).eq_ignore_ascii_case(&p.v),
        B::InI { col, list, negated } => list_values(list).contains(&int_col(r, *col)) != *negated,
        B::InT { col, list, negated } => list_values(list).iter().any(|v| v == text_col(r, *col)) != *negated,
        B::Flag(_) => r.flag,
        B::CmpAt(op, v) => cmp_holds(*op, r.at, *v),
        B::CmpBlob(op, v) => cmp_holds(*op, r.blob.as_slice(), v.as_slice()),
        B::EqExt { ne, v } => (r.ext == *v) != *ne,
        B::InExt { list, negated } => list.contains(&r.ext) != *negated,
    }
}

// ---------------------------------------------------------------------------
// Undefined values, counted for the report (the oracle handles them itself).
// ---------------------------------------------------------------------------

/// Whether evaluating `b` on `r` meets an undefined value anywhere (integer
/// overflow, division by zero, a float result that is not finite): the cases the
/// SQL must guard, counted so that the report shows they were exercised.
pub fn meets_undefined(b: &B, r: &Row) -> bool {
    fn int(e: &I, r: &Row) -> bool {
        match e {
            I::Arith(_, a, b) => int(a, r) || int(b, r) || ev_i(e, r).is_none(),
            I::Neg(a) => int(a, r) || ev_i(e, r).is_none(),
            _ => false,
        }
    }
    fn float(e: &F, r: &Row) -> bool {
        match e {
            F::Arith(_, a, b) => float(a, r) || float(b, r) || ev_f(e, r).is_none(),
            F::Neg(a) => float(a, r) || ev_f(e, r).is_none(),
            _ => false,
        }
    }
    match b {
        B::And(v) | B::Or(v) => v.iter().any(|b| meets_undefined(b, r)),
        B::Not(b) => meets_undefined(b, r),
        B::CmpI(_, a, b) => int(a, r) || int(b, r),
        B::CmpF(_, a, b) => float(a, r) || float(b, r),
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// Rendering to the text form.
// ---------------------------------------------------------------------------

#[derive(Debug, Default)]
pub struct Render {
    pub params: Vec<(String, Value)>,
}

impl Render {
    fn bind(&mut self, v: Value) -> String {
        let name = format!("p{}", self.params.len());
        self.params.push((name.clone(), v));
        name
    }

    fn int(&mut self, l: &Leaf<i64>) -> String {
        if l.param { self.bind(Value::Int(l.v)) } else { l.v.to_string() }
    }

    fn float(&mut self, l: &Leaf<f64>) -> String {
        if l.param { self.bind(Value::Float(l.v)) } else { py_float(l.v) }
    }

    fn text(&mut self, l: &Leaf<String>) -> String {
        if l.param { self.bind(Value::Text(l.v.clone())) } else { py_str(&l.v) }
    }

    fn i(&mut self, e: &I) -> String {
        match e {
            I::Col(c) => format!("r.{}", COLUMNS[*c]),
            I::Leaf(l) => self.int(l),
            I::Arith(op, a, b) => format!("({} {} {})", self.i(a), op.symbol(), self.i(b)),
            I::Neg(a) => format!("(-({}))", self.i(a)),
            I::Len(c) => format!("len(r.{})", COLUMNS[*c]),
        }
    }

    fn f(&mut self, e: &F) -> String {
        match e {
            F::Col => "r.price".into(),
            F::Leaf(l) => self.float(l),
            F::Arith(op, a, b) => format!("({} {} {})", self.f(a), op.symbol(), self.f(b)),
            F::Neg(a) => format!("(-({}))", self.f(a)),
        }
    }

    fn t(&mut self, e: &T) -> String {
        match e {
            T::Col(c) => format!("r.{}", COLUMNS[*c]),
            T::Lower(c) => format!("r.{}.lower()", COLUMNS[*c]),
            T::Leaf(l) => self.text(l),
        }
    }

    fn list<V>(
        &mut self,
        l: &List<V>,
        item: impl Fn(&mut Self, &Leaf<V>) -> String,
        value: impl Fn(&V) -> Value,
    ) -> String {
        match l {
            List::Param(v) => self.bind(Value::List(v.iter().map(value).collect())),
            List::Items(items, bracket) => {
                let parts: Vec<String> = items.iter().map(|i| item(self, i)).collect();
                match (bracket, parts.len()) {
                    (true, _) => format!("[{}]", parts.join(", ")),
                    (false, 1) => format!("({},)", parts[0]),
                    (false, _) => format!("({})", parts.join(", ")),
                }
            }
        }
    }

    pub fn b(&mut self, e: &B) -> String {
        match e {
            B::And(v) => format!("({})", v.iter().map(|b| self.b(b)).collect::<Vec<_>>().join(" and ")),
            B::Or(v) => format!("({})", v.iter().map(|b| self.b(b)).collect::<Vec<_>>().join(" or ")),
            B::Not(b) => format!("(not {})", self.b(b)),
            B::CmpI(op, a, b) => format!("({} {} {})", self.i(a), op.symbol(), self.i(b)),
            B::CmpF(op, a, b) => format!("({} {} {})", self.f(a), op.symbol(), self.f(b)),
            B::CmpT(op, a, b) => format!("({} {} {})", self.t(a), op.symbol(), self.t(b)),
            B::OptI { ne, v } => {
                let rhs = v.as_ref().map_or_else(|| "None".to_owned(), |l| self.int(l));
                format!("(r.grp {} {rhs})", if *ne { "!=" } else { "==" })
            }
            B::OptT { ne, v } => format!("(r.note {} {})", if *ne { "!=" } else { "==" }, self.text(v)),
            B::IsNull { col, negated } => {
                format!("(r.{} is {}None)", COLUMNS[*col], if *negated { "not " } else { "" })
            }
            B::Str(StrOp::Contains, s, p) => format!("({} in {})", self.text(p), self.t(s)),
            B::Str(op, s, p) => {
                let m = if *op == StrOp::StartsWith { "startswith" } else { "endswith" };
                format!("{}.{m}({})", self.t(s), self.text(p))
            }
            B::IEq(s, p) => format!("ieq({}, {})", self.t(s), self.text(p)),
            B::InI { col, list, negated } => {
                let l = self.list(list, |r, i| r.int(i), |v| Value::Int(*v));
                format!("(r.{} {}in {l})", COLUMNS[*col], if *negated { "not " } else { "" })
            }
            B::InT { col, list, negated } => {
                let l = self.list(list, |r, i| r.text(i), |v| Value::Text(v.clone()));
                format!("(r.{} {}in {l})", COLUMNS[*col], if *negated { "not " } else { "" })
            }
            B::Flag(0) => "r.flag".into(),
            B::Flag(1) => "(r.flag == True)".into(),
            B::Flag(_) => "(r.flag != False)".into(),
            B::CmpAt(op, v) => format!("(r.at {} {})", op.symbol(), self.bind(Value::Timestamp(*v))),
            B::CmpBlob(op, v) => format!("(r.blob {} {})", op.symbol(), self.bind(Value::Bytes(v.clone()))),
            B::EqExt { ne, v } => format!("(r.ext {} {})", if *ne { "!=" } else { "==" }, self.bind(Value::Uuid(*v))),
            B::InExt { list, negated } => {
                let l = self.bind(Value::List(list.iter().map(|u| Value::Uuid(*u)).collect()));
                format!("(r.ext {}in {l})", if *negated { "not " } else { "" })
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Generators.
// ---------------------------------------------------------------------------

pub const INTS: &[i64] = &[0, 1, -1, 2, 3, 5, 7, -7, 100, i64::MAX, i64::MIN, i64::MAX - 1, i64::MIN + 1];
pub const CATS: &[i64] = &[0, 1, 2, 3, -1, i64::MAX, i64::MIN];
pub const IDS: &[i64] = &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0, -1, i64::MIN, i64::MAX];
pub const FLOATS: &[f64] = &[
    0.0,
    -0.0,
    1.5,
    -1.5,
    2.0,
    0.1,
    0.3,
    1e-300,
    -1e300,
    f64::MAX,
    f64::MIN,
    f64::MIN_POSITIVE,
    5e-324,
    1e15,
    123456.789,
    f64::INFINITY,
    f64::NEG_INFINITY,
    0.5,
    1e308,
    1e-160,
    1.340_780_792_994_259_6e154,
];
/// Integers at the overflow boundaries of `+ - * / %` and unary `-`, used on purpose
/// next to a column (3037000500² is just above `i64::MAX`).
pub const EDGE_INTS: &[i64] =
    &[i64::MAX, i64::MIN, -1, 0, 2, i64::MAX - 1, i64::MIN + 1, 3_037_000_500, -3_037_000_500];
/// Floats at the finite-range boundaries: overflow, underflow to zero, subnormals,
/// signed zeros, infinities.
pub const EDGE_FLOATS: &[f64] = &[
    f64::MAX,
    f64::MIN,
    1e308,
    5e-324,
    f64::MIN_POSITIVE,
    0.5,
    2.0,
    0.0,
    -0.0,
    1e-160,
    1.340_780_792_994_259_6e154,
    f64::INFINITY,
    f64::NEG_INFINITY,
];
/// Characters that stress LIKE escaping, case folding, byte order and key escaping.
/// No NUL: PostgreSQL text cannot hold it (hostile.rs covers it).
pub const ALPHABET: &[char] = &[
    'a', 'b', 'A', 'B', 'a', 'b', '%', '_', '\\', '\'', '"', ' ', 'é', 'É', 'ß', 'Σ', 'σ', 'ς', 'İ', 'ı', 'i', 'I',
    '😀', '\u{301}', '\n', '\t', '\u{1}', '\u{7f}', ':', '&', '=', '[',
];

/// Instants in microseconds since 1970: before and after it by one microsecond,
/// 1900, year 1 and year 9999 (within every database's range), and a present-day one.
pub const INSTANTS: &[i64] =
    &[0, -1, 1, 1_715_000_000_123_456, -2_208_988_800_000_007, -62_135_596_800_000_000, 253_402_300_799_999_999];
/// UUIDs: nil, max, and two whose first bytes order them differently than their last.
pub const UUIDS: &[[u8; 16]] = &[
    [0; 16],
    [0xff; 16],
    [1, 2, 3, 4, 5, 6, 0x47, 8, 0x89, 10, 11, 12, 13, 14, 15, 0xf0],
    [0x80, 0, 0, 0, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0, 1],
];

pub fn instant() -> BoxedStrategy<i64> {
    prop_oneof![4 => select(INSTANTS), 1 => -4_000_000_000_000_000i64..4_000_000_000_000_000].boxed()
}

/// Byte strings of 0 to 3 bytes from {0, 1, 255}: empty, prefixes of one another,
/// and bytes above 127 (which a signed comparison would misorder).
pub fn bytes_val() -> BoxedStrategy<Vec<u8>> {
    proptest::collection::vec(select(&[0u8, 1, 255][..]), 0..4).boxed()
}

pub fn int_val() -> BoxedStrategy<i64> {
    prop_oneof![4 => select(INTS), 2 => -3i64..=3, 1 => any::<i64>()].boxed()
}

pub fn float_val() -> BoxedStrategy<f64> {
    prop_oneof![
        4 => select(FLOATS),
        1 => proptest::num::f64::POSITIVE | proptest::num::f64::NEGATIVE | proptest::num::f64::NORMAL
            | proptest::num::f64::SUBNORMAL | proptest::num::f64::ZERO,
    ]
    .boxed()
}

pub fn text_val() -> BoxedStrategy<String> {
    prop_oneof![
        6 => proptest::collection::vec(select(ALPHABET), 0..5).prop_map(|v| v.into_iter().collect()),
        2 => select(&["", "ab", "AB", "a%", "a_b", "%", "_", "\\", "ab\\%", "abc", "Ab", "é", "ÉCOLE", "école"][..])
            .prop_map(str::to_owned),
        1 => "[a-zA-Zé😀 ]{100,300}",
    ]
    .boxed()
}

pub fn leaf<V: std::fmt::Debug + Clone + 'static>(v: BoxedStrategy<V>) -> BoxedStrategy<Leaf<V>> {
    (v, any::<bool>()).prop_map(|(v, param)| Leaf { v, param }).boxed()
}

pub fn row_strategy() -> impl Strategy<Value = Row> {
    let columns = (
        select(IDS),
        prop_oneof![3 => select(CATS), 1 => any::<i64>()],
        proptest::option::of(select(&[0i64, 1, 2, -1][..])),
        text_val(),
        text_val(),
        float_val(),
        int_val(),
        proptest::option::of(text_val()),
        any::<bool>(),
    );
    (columns, instant(), select(UUIDS), bytes_val()).prop_map(
        |((id, cat, grp, name, tag, price, qty, note, flag), at, ext, blob)| Row {
            id,
            cat,
            grp,
            name,
            tag,
            price,
            qty,
            note,
            flag,
            at,
            ext,
            blob,
        },
    )
}

pub fn cmp_op() -> impl Strategy<Value = CmpOp> {
    select(&[CmpOp::Eq, CmpOp::Ne, CmpOp::Lt, CmpOp::Le, CmpOp::Gt, CmpOp::Ge][..])
}

pub fn arith_op() -> impl Strategy<Value = ArithOp> {
    select(&[ArithOp::Add, ArithOp::Sub, ArithOp::Mul, ArithOp::Div, ArithOp::Rem][..])
}

/// `+ - * /` (floats have no `%`: the checker rejects it).
pub fn float_op() -> impl Strategy<Value = ArithOp> {
    select(&[ArithOp::Add, ArithOp::Sub, ArithOp::Mul, ArithOp::Div][..])
}

/// A column and an edge value under one operator, either way round, sometimes
/// negated: integer overflow, division by zero and `i64::MIN / -1` on purpose.
pub fn edge_int_expr() -> BoxedStrategy<I> {
    let edge = leaf(select(EDGE_INTS).boxed()).prop_map(I::Leaf);
    let column = select(&[ID, CAT, QTY][..]).prop_map(I::Col);
    (arith_op(), column, edge, any::<bool>(), 0u8..4)
        .prop_map(|(op, c, v, swap, neg)| {
            let (a, b) = if swap { (v, c) } else { (c, v) };
            let e = I::Arith(op, Box::new(a), Box::new(b));
            if neg == 0 { I::Neg(Box::new(e)) } else { e }
        })
        .boxed()
}

/// The float twin of [`edge_int_expr`]: overflow to ±inf, underflow to zero,
/// subnormals, `x / 0.0`, stored infinities.
pub fn edge_float_expr() -> BoxedStrategy<F> {
    let edge = leaf(select(EDGE_FLOATS).boxed()).prop_map(F::Leaf);
    (float_op(), edge, any::<bool>(), 0u8..4, prop_oneof![Just(None), float_op().prop_map(Some)])
        .prop_map(|(op, v, swap, neg, outer)| {
            let (a, b) = if swap { (v, F::Col) } else { (F::Col, v) };
            let mut e = F::Arith(op, Box::new(a), Box::new(b));
            if let Some(outer) = outer {
                e = F::Arith(outer, Box::new(e), Box::new(F::Col));
            }
            if neg == 0 { F::Neg(Box::new(e)) } else { e }
        })
        .boxed()
}

pub fn int_expr() -> BoxedStrategy<I> {
    let base = prop_oneof![
        3 => select(&[ID, CAT, QTY][..]).prop_map(I::Col),
        3 => leaf(int_val()).prop_map(I::Leaf),
        1 => select(&[NAME, TAG][..]).prop_map(I::Len),
    ];
    base.prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            3 => (arith_op(), inner.clone(), inner.clone()).prop_map(|(op, a, b)| I::Arith(op, Box::new(a), Box::new(b))),
            1 => inner.prop_map(|a| I::Neg(Box::new(a))),
        ]
    })
    .boxed()
}

pub fn float_expr() -> BoxedStrategy<F> {
    let base = prop_oneof![2 => Just(F::Col), 2 => leaf(float_val()).prop_map(F::Leaf)];
    base.prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            3 => (float_op(), inner.clone(), inner.clone()).prop_map(|(op, a, b)| F::Arith(op, Box::new(a), Box::new(b))),
            1 => inner.prop_map(|a| F::Neg(Box::new(a))),
        ]
    })
    .boxed()
}

pub fn text_subject() -> BoxedStrategy<T> {
    prop_oneof![3 => select(&[NAME, TAG][..]).prop_map(T::Col), 1 => select(&[NAME, TAG][..]).prop_map(T::Lower)]
        .boxed()
}

pub fn text_expr() -> BoxedStrategy<T> {
    prop_oneof![3 => text_subject(), 2 => leaf(text_val()).prop_map(T::Leaf)].boxed()
}

pub fn list_of<V: std::fmt::Debug + Clone + 'static>(v: BoxedStrategy<V>) -> BoxedStrategy<List<V>> {
    prop_oneof![
        3 => (proptest::collection::vec(leaf(v.clone()), 0..4), any::<bool>()).prop_map(|(i, b)| List::Items(i, b)),
        1 => proptest::collection::vec(v, 0..4).prop_map(List::Param),
    ]
    .boxed()
}

/// Any boolean expression of the language over the row.
pub fn residual() -> BoxedStrategy<B> {
    let atom = prop_oneof![
        4 => (cmp_op(), int_expr(), int_expr()).prop_map(|(op, a, b)| B::CmpI(op, a, b)),
        3 => (cmp_op(), float_expr(), float_expr()).prop_map(|(op, a, b)| B::CmpF(op, a, b)),
        2 => (cmp_op(), edge_int_expr(), int_expr()).prop_map(|(op, a, b)| B::CmpI(op, a, b)),
        2 => (cmp_op(), edge_float_expr(), float_expr()).prop_map(|(op, a, b)| B::CmpF(op, a, b)),
        3 => (cmp_op(), text_subject(), text_expr()).prop_map(|(op, a, b)| B::CmpT(op, a, b)),
        2 => (any::<bool>(), proptest::option::weighted(0.8, leaf(select(&[0i64, 1, 2, -1][..]).boxed())))
            .prop_map(|(ne, v)| B::OptI { ne, v }),
        2 => (any::<bool>(), leaf(text_val())).prop_map(|(ne, v)| B::OptT { ne, v }),
        2 => (select(&[GRP, NOTE][..]), any::<bool>()).prop_map(|(col, negated)| B::IsNull { col, negated }),
        4 => (select(&[StrOp::StartsWith, StrOp::EndsWith, StrOp::Contains][..]), text_subject(), leaf(text_val()))
            .prop_map(|(op, s, p)| B::Str(op, s, p)),
        2 => (text_subject(), leaf(text_val())).prop_map(|(s, p)| B::IEq(s, p)),
        2 => (select(&[CAT, QTY, ID][..]), list_of(int_val()), any::<bool>())
            .prop_map(|(col, list, negated)| B::InI { col, list, negated }),
        2 => (select(&[NAME, TAG][..]), list_of(text_val()), any::<bool>())
            .prop_map(|(col, list, negated)| B::InT { col, list, negated }),
        1 => (0u8..3).prop_map(B::Flag),
        2 => (cmp_op(), instant()).prop_map(|(op, v)| B::CmpAt(op, v)),
        1 => (cmp_op(), bytes_val()).prop_map(|(op, v)| B::CmpBlob(op, v)),
        1 => (any::<bool>(), select(UUIDS)).prop_map(|(ne, v)| B::EqExt { ne, v }),
        1 => (proptest::collection::vec(select(UUIDS), 0..3), any::<bool>())
            .prop_map(|(list, negated)| B::InExt { list, negated }),
    ];
    atom.prop_recursive(3, 8, 3, |inner| {
        prop_oneof![
            2 => proptest::collection::vec(inner.clone(), 2..4).prop_map(B::And),
            2 => proptest::collection::vec(inner.clone(), 2..3).prop_map(B::Or),
            1 => inner.prop_map(|b| B::Not(Box::new(b))),
        ]
    })
    .boxed()
}

pub fn eq(col: usize, v: Leaf<i64>) -> B {
    B::CmpI(CmpOp::Eq, I::Col(col), I::Leaf(v))
}

/// Something an index (or the key) serves, so that the text form accepts the query.
pub fn criterion() -> BoxedStrategy<B> {
    let cat = || leaf(prop_oneof![3 => select(CATS), 1 => int_val()].boxed());
    prop_oneof![
        4 => cat().prop_map(|v| eq(CAT, v)),
        2 => list_of(select(CATS).boxed()).prop_map(|list| B::InI { col: CAT, list, negated: false }),
        // A literal pattern shorter than the prefix index is unindexable (by design);
        // a bound one may be short (the runtime then asks the database).
        3 => leaf(text_val()).prop_map(|mut p| {
            if !p.param && p.v.chars().count() < 2 {
                p.v.push_str("ab");
            }
            B::Str(StrOp::StartsWith, T::Col(NAME), p)
        }),
        2 => leaf(text_val()).prop_map(|v| B::CmpT(CmpOp::Eq, T::Col(TAG), T::Leaf(v))),
        2 => (cat(), proptest::option::of(leaf(select(&[0i64, 1, 2, -1][..]).boxed()))).prop_map(|(c, g)| {
            let grp = match g {
                Some(v) => B::OptI { ne: false, v: Some(v) },
                None => B::IsNull { col: GRP, negated: false },
            };
            B::And(vec![eq(CAT, c), grp])
        }),
        1 => leaf(select(IDS).boxed()).prop_map(|v| eq(ID, v)),
        1 => list_of(select(IDS).boxed()).prop_map(|list| B::InI { col: ID, list, negated: false }),
        1 => instant().prop_map(|v| B::CmpAt(CmpOp::Eq, v)),
        1 => select(UUIDS).prop_map(|v| B::EqExt { ne: false, v }),
        1 => proptest::collection::vec(select(UUIDS), 1..3).prop_map(|list| B::InExt { list, negated: false }),
        1 => bytes_val().prop_map(|v| B::CmpBlob(CmpOp::Eq, v)),
    ]
    .boxed()
}

pub fn disjunct() -> BoxedStrategy<B> {
    (criterion(), proptest::option::weighted(0.8, residual()))
        .prop_map(|(c, r)| match r {
            Some(r) => B::And(vec![c, r]),
            None => c,
        })
        .boxed()
}

#[derive(Clone, Debug)]
pub struct Query {
    pub pred: B,
    pub order: Option<(usize, bool)>,
    pub limit: Option<u64>,
    pub offset: u64,
}

pub fn query() -> impl Strategy<Value = Query> {
    (
        proptest::collection::vec(disjunct(), 1..3),
        proptest::option::weighted(0.4, (0usize..COLUMNS.len(), any::<bool>())),
        proptest::option::weighted(0.3, 0u64..5),
        prop_oneof![3 => Just(0u64), 1 => 0u64..4],
    )
        .prop_map(|(mut d, order, limit, offset)| Query {
            pred: if d.len() == 1 { d.remove(0) } else { B::Or(d) },
            order,
            limit,
            offset,
        })
}

#[derive(Clone, Debug)]
pub struct Case {
    pub rows: Vec<Row>,
    pub queries: Vec<Query>,
}

pub fn case() -> impl Strategy<Value = Case> {
    (proptest::collection::vec(row_strategy(), 0..12), proptest::collection::vec(query(), 1..5))
        .prop_map(|(rows, queries)| Case { rows, queries })
}

impl Query {
    pub fn probe(&self) -> Probe {
        let mut r = Render::default();
        let text = format!("lambda r: {}", r.b(&self.pred));
        Probe {
            text,
            params: r.params,
            order: self.order,
            limit: self.limit,
            offset: self.offset,
            after: None,
            ordered_page: false,
        }
    }
}

// ---------------------------------------------------------------------------
// Ordered pages (issue 16): rounds of small writes, each followed by pages of the
// ordered indexes and pages that must be cut in memory.
// ---------------------------------------------------------------------------

/// The columns the model's ordered indexes on `cat` order by.
pub const CAT_ORDERS: &[usize] = &[GRP, PRICE, NAME];

/// Prices with ties, both zeros (equal, so their order is the key's), both
/// infinities and the extremes.
pub const ORDER_FLOATS: &[f64] =
    &[0.0, -0.0, 1.5, -1.5, 2.0, f64::INFINITY, f64::NEG_INFINITY, f64::MAX, f64::MIN, 5e-324];

/// Names with ties, a prefix of another, a capital that sorts before every lower
/// case letter by bytes, and a multi-byte letter that sorts after them all.
pub const ORDER_NAMES: &[&str] = &["", "a", "ab", "ab ", "B", "b", "é", "a%", "😀"];

/// Where a keyset probe's `after` row comes from, resolved when the probe runs.
#[derive(Clone, Debug)]
pub enum AfterPick {
    /// The n-th stored row (modulo their number), as stored now.
    Stored(usize),
    /// A row that is not stored: the last row this case deleted when it is still
    /// gone, else this one (its id is outside the stored range).
    Gone(Row),
}

/// One write of a round: a column of the n-th stored row (modulo their number)
/// changed, a row inserted (or overwritten, when its id is stored) or deleted.
#[derive(Clone, Debug)]
pub enum Mutation {
    Grp(usize, Option<i64>),
    Price(usize, f64),
    Name(usize, String),
    Qty(usize, i64),
    /// A move to another group of every `cat` index.
    Cat(usize, i64),
    Insert(Row),
    Delete(usize),
}

impl Mutation {
    /// Applies the write to `rows`; a deleted row goes to `deleted`.
    pub fn apply(&self, rows: &mut BTreeMap<i64, Row>, deleted: &mut Vec<Row>) {
        if let Mutation::Insert(r) = self {
            rows.insert(r.id, r.clone());
            return;
        }
        let (Mutation::Grp(n, _)
        | Mutation::Price(n, _)
        | Mutation::Name(n, _)
        | Mutation::Qty(n, _)
        | Mutation::Cat(n, _)
        | Mutation::Delete(n)) = self
        else {
            return;
        };
        let Some(id) = rows.keys().nth(n % rows.len().max(1)).copied() else { return };
        let Some(r) = rows.get_mut(&id) else { return };
        match self {
            Mutation::Grp(_, v) => r.grp = *v,
            Mutation::Price(_, v) => r.price = *v,
            Mutation::Name(_, v) => r.name.clone_from(v),
            Mutation::Qty(_, v) => r.qty = *v,
            Mutation::Cat(_, v) => r.cat = *v,
            Mutation::Delete(_) => deleted.extend(rows.remove(&id)),
            Mutation::Insert(_) => {}
        }
    }
}

/// A query of an ordered round, with its keyset row and whether a hot cache should
/// answer it from an ordered index.
#[derive(Clone, Debug)]
pub struct OrderedQuery {
    pub query: Query,
    pub after: Option<AfterPick>,
    pub ordered_page: bool,
}

impl OrderedQuery {
    /// The probe, with its `after` row resolved against the stored `rows`.
    pub fn probe(&self, rows: &BTreeMap<i64, Row>, deleted: &[Row]) -> Probe {
        let mut p = self.query.probe();
        p.ordered_page = self.ordered_page;
        p.after = match &self.after {
            None => None,
            Some(AfterPick::Stored(n)) => rows.values().nth(n % rows.len().max(1)).cloned(),
            Some(AfterPick::Gone(r)) => {
                Some(deleted.iter().rev().find(|d| !rows.contains_key(&d.id)).unwrap_or(r).clone())
            }
        };
        p
    }
}

#[derive(Clone, Debug)]
pub struct Round {
    pub mutations: Vec<Mutation>,
    pub queries: Vec<OrderedQuery>,
}

#[derive(Clone, Debug)]
pub struct OrderedCase {
    pub rows: Vec<Row>,
    pub rounds: Vec<Round>,
}

/// A row of an ordered case: mostly two groups, so that groups are longer than
/// pages (a page cut before a residual filter then differs from one cut after), and
/// order values with ties; the other columns as random as ever.
pub fn ordered_row(ids: std::ops::RangeInclusive<i64>) -> BoxedStrategy<Row> {
    (
        row_strategy(),
        ids,
        prop_oneof![6 => 0i64..2, 1 => select(CATS)],
        proptest::option::weighted(0.75, -1i64..3),
        select(ORDER_FLOATS),
        select(ORDER_NAMES),
        -2i64..3,
    )
        .prop_map(|(r, id, cat, grp, price, name, qty)| Row { id, cat, grp, price, name: name.into(), qty, ..r })
        .boxed()
}

pub fn mutation() -> BoxedStrategy<Mutation> {
    let n = || 0usize..32;
    prop_oneof![
        3 => (n(), proptest::option::weighted(0.75, -1i64..3)).prop_map(|(n, v)| Mutation::Grp(n, v)),
        3 => (n(), select(ORDER_FLOATS)).prop_map(|(n, v)| Mutation::Price(n, v)),
        2 => (n(), select(ORDER_NAMES)).prop_map(|(n, v)| Mutation::Name(n, v.into())),
        2 => (n(), -2i64..3).prop_map(|(n, v)| Mutation::Qty(n, v)),
        2 => (n(), 0i64..3).prop_map(|(n, v)| Mutation::Cat(n, v)),
        2 => ordered_row(1..=32).prop_map(Mutation::Insert),
        2 => n().prop_map(Mutation::Delete),
    ]
    .boxed()
}

pub fn after_pick() -> BoxedStrategy<Option<AfterPick>> {
    prop_oneof![
        3 => Just(None),
        2 => (0usize..32).prop_map(|n| Some(AfterPick::Stored(n))),
        1 => ordered_row(90..=99).prop_map(|r| Some(AfterPick::Gone(r))),
    ]
    .boxed()
}

/// A query of an ordered round: mostly pages an ordered index answers (one
/// equality on its columns alone, ordered by its order column, with a limit and
/// offsets up to past the end), and pages that must be cut in memory: a residual
/// filter, an `in` list of several nodes, another order column, no limit.
pub fn ordered_query() -> BoxedStrategy<OrderedQuery> {
    let cat = || leaf(prop_oneof![6 => 0i64..2, 1 => 2i64..4].boxed());
    let limit = || proptest::option::weighted(0.9, prop_oneof![1 => Just(0u64), 6 => 1u64..6]).boxed();
    // Mostly pages inside a group of a few rows, sometimes past its end.
    let offset = || prop_oneof![3 => Just(0u64), 2 => 0u64..4, 1 => 0u64..10].boxed();
    let page = |pred: BoxedStrategy<B>,
                order: BoxedStrategy<(usize, bool)>,
                limit: BoxedStrategy<Option<u64>>,
                offset: BoxedStrategy<u64>,
                ordered: bool| {
        (pred, order, limit, offset, after_pick())
            .prop_map(move |(pred, order, limit, offset, after)| OrderedQuery {
                ordered_page: ordered && limit.is_some(),
                query: Query { pred, order: Some(order), limit, offset },
                after,
            })
            .boxed()
    };
    let by = |columns: &'static [usize]| (select(columns), any::<bool>()).boxed();
    let grp = || {
        proptest::option::weighted(0.75, leaf((-1i64..3).boxed())).prop_map(|g| match g {
            Some(v) => B::OptI { ne: false, v: Some(v) },
            None => B::IsNull { col: GRP, negated: false },
        })
    };
    let cat_only = || cat().prop_map(|c| eq(CAT, c)).boxed();
    // A residual filter with short pages past a few rows: a page cut from the node's
    // order before the filter would then skip rows the filter drops.
    let with_residual = (cat(), group_split()).prop_map(|(c, r)| B::And(vec![eq(CAT, c), r])).boxed();
    let short = proptest::option::weighted(0.9, 1u64..3).boxed();
    let past_a_few = prop_oneof![1 => Just(0u64), 3 => 1u64..4].boxed();
    let several_nodes = proptest::collection::vec(leaf((0i64..4).boxed()), 2..4)
        .prop_map(|items| B::InI { col: CAT, list: List::Items(items, false), negated: false })
        .boxed();
    prop_oneof![
        6 => page(cat_only(), by(CAT_ORDERS), limit(), offset(), true),
        2 => page(
            (cat(), grp()).prop_map(|(c, g)| B::And(vec![eq(CAT, c), g])).boxed(),
            by(&[QTY]),
            limit(),
            offset(),
            true
        ),
        3 => page(with_residual, by(CAT_ORDERS), short, past_a_few, false),
        2 => page(several_nodes, by(CAT_ORDERS), limit(), offset(), false),
        1 => page(cat_only(), by(&[ID, TAG, QTY, NOTE, AT, FLAG]), limit(), offset(), false),
    ]
    .boxed()
}

/// A residual filter for an ordered round: mostly simple tests that keep some rows
/// of a group and drop others (so that a page cut before the filter would differ
/// from one cut after it), sometimes anything the language has.
pub fn group_split() -> BoxedStrategy<B> {
    let simple = prop_oneof![
        (cmp_op(), -1i64..2).prop_map(|(op, v)| B::CmpI(op, I::Col(QTY), I::Leaf(Leaf { v, param: false }))),
        (0u8..3).prop_map(B::Flag),
        (cmp_op(), select(&[0.0, 1.5][..])).prop_map(|(op, v)| B::CmpF(op, F::Col, F::Leaf(Leaf { v, param: true }))),
        Just(B::Str(StrOp::StartsWith, T::Col(NAME), Leaf { v: "a".into(), param: false })),
        any::<bool>().prop_map(|negated| B::IsNull { col: GRP, negated }),
    ];
    prop_oneof![3 => simple, 1 => residual()].boxed()
}

pub fn ordered_case() -> impl Strategy<Value = OrderedCase> {
    let round = (proptest::collection::vec(mutation(), 0..4), proptest::collection::vec(ordered_query(), 1..4))
        .prop_map(|(mutations, queries)| Round { mutations, queries });
    (proptest::collection::vec(ordered_row(1..=32), 0..24), proptest::collection::vec(round, 1..4))
        .prop_map(|(rows, rounds)| OrderedCase { rows, rounds })
}
