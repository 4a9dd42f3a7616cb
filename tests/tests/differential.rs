//! Differential testing: random rows and random queries from the whole language,
//! answered by every path memdex has (see `regressions.rs` for the harness), each
//! compared with an oracle evaluated here over the row struct.
//!
//! The CI run is fixed-seed and bounded; a soak run takes its size and seed from the
//! environment (docs/soak.md):
//!
//! ```text
//! MEMDEX_DIFF_CASES=20000 MEMDEX_DIFF_SEED=7 cargo test -p memdex-tests --test differential -- --ignored soak
//! ```

// Tests fail by panicking, with a message saying what went wrong.
#![allow(clippy::panic, clippy::unwrap_used)]

#[path = "regressions.rs"]
mod harness;

use harness::*;
use memdex::Value;
use memdex::grammar::ir::{ArithOp, CmpOp, StrOp};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

// ---------------------------------------------------------------------------
// The predicate language, as the oracle sees it.
// ---------------------------------------------------------------------------

/// A value written either as a literal or as a bound parameter.
#[derive(Clone, Debug)]
struct Leaf<V> {
    v: V,
    param: bool,
}

#[derive(Clone, Debug)]
enum I {
    Col(usize),
    Leaf(Leaf<i64>),
    Arith(ArithOp, Box<I>, Box<I>),
    Neg(Box<I>),
    Len(usize),
}

#[derive(Clone, Debug)]
enum F {
    Col,
    Leaf(Leaf<f64>),
    Arith(ArithOp, Box<F>, Box<F>),
    Neg(Box<F>),
}

#[derive(Clone, Debug)]
enum T {
    Col(usize),
    Lower(usize),
    Leaf(Leaf<String>),
}

#[derive(Clone, Debug)]
enum List<V> {
    /// A literal display: `[a, b]` or `(a, b)` (`bracket`), items literal or bound.
    Items(Vec<Leaf<V>>, bool),
    /// One parameter bound to a list.
    Param(Vec<V>),
}

#[derive(Clone, Debug)]
enum B {
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

fn int_col(r: &Row, c: usize) -> i64 {
    match c {
        ID => r.id,
        CAT => r.cat,
        _ => r.qty,
    }
}

fn text_col(r: &Row, c: usize) -> &str {
    if c == NAME { &r.name } else { &r.tag }
}

/// `None` where Rust would panic (overflow, division by zero).
fn ev_i(e: &I, r: &Row) -> Option<i64> {
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
fn ev_f(e: &F, r: &Row) -> Option<f64> {
    let finite = |x: f64| x.is_finite().then_some(x);
    match e {
        F::Col => Some(r.price),
        F::Leaf(l) => Some(l.v),
        F::Arith(op, a, b) => finite(float_arith(*op, ev_f(a, r)?, ev_f(b, r)?)),
        F::Neg(a) => finite(-ev_f(a, r)?),
    }
}

fn ev_t(e: &T, r: &Row) -> String {
    match e {
        T::Col(c) => text_col(r, *c).to_owned(),
        T::Lower(c) => text_col(r, *c).to_lowercase(),
        T::Leaf(l) => l.v.clone(),
    }
}

fn list_values<V: Clone>(l: &List<V>) -> Vec<V> {
    match l {
        List::Items(items, _) => items.iter().map(|i| i.v.clone()).collect(),
        List::Param(v) => v.clone(),
    }
}

fn ev_b(e: &B, r: &Row) -> bool {
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
fn meets_undefined(b: &B, r: &Row) -> bool {
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

#[derive(Default)]
struct Render {
    params: Vec<(String, Value)>,
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

    fn b(&mut self, e: &B) -> String {
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

const INTS: &[i64] = &[0, 1, -1, 2, 3, 5, 7, -7, 100, i64::MAX, i64::MIN, i64::MAX - 1, i64::MIN + 1];
const CATS: &[i64] = &[0, 1, 2, 3, -1, i64::MAX, i64::MIN];
const IDS: &[i64] = &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0, -1, i64::MIN, i64::MAX];
const FLOATS: &[f64] = &[
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
const EDGE_INTS: &[i64] = &[i64::MAX, i64::MIN, -1, 0, 2, i64::MAX - 1, i64::MIN + 1, 3_037_000_500, -3_037_000_500];
/// Floats at the finite-range boundaries: overflow, underflow to zero, subnormals,
/// signed zeros, infinities.
const EDGE_FLOATS: &[f64] = &[
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
const ALPHABET: &[char] = &[
    'a', 'b', 'A', 'B', 'a', 'b', '%', '_', '\\', '\'', '"', ' ', 'é', 'É', 'ß', 'Σ', 'σ', 'ς', 'İ', 'ı', 'i', 'I',
    '😀', '\u{301}', '\n', '\t', '\u{1}', '\u{7f}', ':', '&', '=', '[',
];

/// Instants in microseconds since 1970: before and after it by one microsecond,
/// 1900, year 1 and year 9999 (within every database's range), and a present-day one.
const INSTANTS: &[i64] =
    &[0, -1, 1, 1_715_000_000_123_456, -2_208_988_800_000_007, -62_135_596_800_000_000, 253_402_300_799_999_999];
/// UUIDs: nil, max, and two whose first bytes order them differently than their last.
const UUIDS: &[[u8; 16]] = &[
    [0; 16],
    [0xff; 16],
    [1, 2, 3, 4, 5, 6, 0x47, 8, 0x89, 10, 11, 12, 13, 14, 15, 0xf0],
    [0x80, 0, 0, 0, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0, 1],
];

fn instant() -> BoxedStrategy<i64> {
    prop_oneof![4 => select(INSTANTS), 1 => -4_000_000_000_000_000i64..4_000_000_000_000_000].boxed()
}

/// Byte strings of 0 to 3 bytes from {0, 1, 255}: empty, prefixes of one another,
/// and bytes above 127 (which a signed comparison would misorder).
fn bytes_val() -> BoxedStrategy<Vec<u8>> {
    proptest::collection::vec(select(&[0u8, 1, 255][..]), 0..4).boxed()
}

fn int_val() -> BoxedStrategy<i64> {
    prop_oneof![4 => select(INTS), 2 => -3i64..=3, 1 => any::<i64>()].boxed()
}

fn float_val() -> BoxedStrategy<f64> {
    prop_oneof![
        4 => select(FLOATS),
        1 => proptest::num::f64::POSITIVE | proptest::num::f64::NEGATIVE | proptest::num::f64::NORMAL
            | proptest::num::f64::SUBNORMAL | proptest::num::f64::ZERO,
    ]
    .boxed()
}

fn text_val() -> BoxedStrategy<String> {
    prop_oneof![
        6 => proptest::collection::vec(select(ALPHABET), 0..5).prop_map(|v| v.into_iter().collect()),
        2 => select(&["", "ab", "AB", "a%", "a_b", "%", "_", "\\", "ab\\%", "abc", "Ab", "é", "ÉCOLE", "école"][..])
            .prop_map(str::to_owned),
        1 => "[a-zA-Zé😀 ]{100,300}",
    ]
    .boxed()
}

fn leaf<V: std::fmt::Debug + Clone + 'static>(v: BoxedStrategy<V>) -> BoxedStrategy<Leaf<V>> {
    (v, any::<bool>()).prop_map(|(v, param)| Leaf { v, param }).boxed()
}

fn row_strategy() -> impl Strategy<Value = Row> {
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

fn cmp_op() -> impl Strategy<Value = CmpOp> {
    select(&[CmpOp::Eq, CmpOp::Ne, CmpOp::Lt, CmpOp::Le, CmpOp::Gt, CmpOp::Ge][..])
}

fn arith_op() -> impl Strategy<Value = ArithOp> {
    select(&[ArithOp::Add, ArithOp::Sub, ArithOp::Mul, ArithOp::Div, ArithOp::Rem][..])
}

/// `+ - * /` (floats have no `%`: the checker rejects it).
fn float_op() -> impl Strategy<Value = ArithOp> {
    select(&[ArithOp::Add, ArithOp::Sub, ArithOp::Mul, ArithOp::Div][..])
}

/// A column and an edge value under one operator, either way round, sometimes
/// negated: integer overflow, division by zero and `i64::MIN / -1` on purpose.
fn edge_int_expr() -> BoxedStrategy<I> {
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
fn edge_float_expr() -> BoxedStrategy<F> {
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

fn int_expr() -> BoxedStrategy<I> {
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

fn float_expr() -> BoxedStrategy<F> {
    let base = prop_oneof![2 => Just(F::Col), 2 => leaf(float_val()).prop_map(F::Leaf)];
    base.prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            3 => (float_op(), inner.clone(), inner.clone()).prop_map(|(op, a, b)| F::Arith(op, Box::new(a), Box::new(b))),
            1 => inner.prop_map(|a| F::Neg(Box::new(a))),
        ]
    })
    .boxed()
}

fn text_subject() -> BoxedStrategy<T> {
    prop_oneof![3 => select(&[NAME, TAG][..]).prop_map(T::Col), 1 => select(&[NAME, TAG][..]).prop_map(T::Lower)]
        .boxed()
}

fn text_expr() -> BoxedStrategy<T> {
    prop_oneof![3 => text_subject(), 2 => leaf(text_val()).prop_map(T::Leaf)].boxed()
}

fn list_of<V: std::fmt::Debug + Clone + 'static>(v: BoxedStrategy<V>) -> BoxedStrategy<List<V>> {
    prop_oneof![
        3 => (proptest::collection::vec(leaf(v.clone()), 0..4), any::<bool>()).prop_map(|(i, b)| List::Items(i, b)),
        1 => proptest::collection::vec(v, 0..4).prop_map(List::Param),
    ]
    .boxed()
}

/// Any boolean expression of the language over the row.
fn residual() -> BoxedStrategy<B> {
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

fn eq(col: usize, v: Leaf<i64>) -> B {
    B::CmpI(CmpOp::Eq, I::Col(col), I::Leaf(v))
}

/// Something an index (or the key) serves, so that the text form accepts the query.
fn criterion() -> BoxedStrategy<B> {
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

fn disjunct() -> BoxedStrategy<B> {
    (criterion(), proptest::option::weighted(0.8, residual()))
        .prop_map(|(c, r)| match r {
            Some(r) => B::And(vec![c, r]),
            None => c,
        })
        .boxed()
}

#[derive(Clone, Debug)]
struct Query {
    pred: B,
    order: Option<(usize, bool)>,
    limit: Option<u64>,
    offset: u64,
}

fn query() -> impl Strategy<Value = Query> {
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
struct Case {
    rows: Vec<Row>,
    queries: Vec<Query>,
}

fn case() -> impl Strategy<Value = Case> {
    (proptest::collection::vec(row_strategy(), 0..12), proptest::collection::vec(query(), 1..5))
        .prop_map(|(rows, queries)| Case { rows, queries })
}

impl Query {
    fn probe(&self) -> Probe {
        let mut r = Render::default();
        let text = format!("lambda r: {}", r.b(&self.pred));
        Probe { text, params: r.params, order: self.order, limit: self.limit, offset: self.offset }
    }
}

// ---------------------------------------------------------------------------
// The runs.
// ---------------------------------------------------------------------------

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn run(coverage: Coverage, cases: u32, seed: u64) {
    let world = World::new(coverage);
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config { cases, failure_persistence: None, max_shrink_iters: 2000, ..Config::default() };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes));
    let too_many = std::cell::Cell::new(0u64);
    let undefined = std::cell::Cell::new(0u64);
    let world = std::cell::RefCell::new(world);
    let result = runner.run(&case(), |case| {
        let mut world = world.borrow_mut();
        // Rows with the same id: the last one wins, as in a table.
        let mut rows: Vec<Row> = Vec::new();
        for r in case.rows {
            rows.retain(|x| x.id != r.id);
            rows.push(r);
        }
        world.load(&rows).map_err(TestCaseError::fail)?;
        for q in &case.queries {
            undefined.set(undefined.get() + u64::from(rows.iter().any(|r| meets_undefined(&q.pred, r))));
            let probe_ = q.probe();
            match probe(&mut world, &probe_, &|r| ev_b(&q.pred, r)) {
                Ok(Outcome::Agreed) => {}
                Ok(Outcome::TooManyDisjuncts) => too_many.set(too_many.get() + 1),
                Err(e) => return Err(TestCaseError::fail(e)),
            }
        }
        Ok(())
    });
    let world = world.into_inner();
    let too_many = too_many.get();
    let s = world.stats;
    eprintln!(
        "differential ({coverage:?}, seed {seed}): {cases} cases, {} queries, {} fetches, {} SQL runs, {} lanes, \
         {too_many} queries over the disjunct limit, {} reading an undefined value (overflow, division by zero, \
         non-finite float) for some row",
        s.queries,
        s.fetches,
        s.sql_runs,
        world.lanes.len(),
        undefined.get()
    );
    if let Err(e) = result {
        panic!("disagreement (seed {seed}):\n{e}");
    }
}

/// The CI run: fixed seed, every lane (SQLite and PostgreSQL, in-process cache and
/// memcached, cache down, emitted SQL on both databases).
#[test]
fn random_queries_agree_on_every_path() {
    run(Coverage::Full, env_u64("MEMDEX_DIFF_CASES", 1000) as u32, env_u64("MEMDEX_DIFF_SEED", 0x5eed));
}

/// The same cases, same seed, on MariaDB (both caches, the cache down, the
/// emitted SQL), in a world of its own so that it runs next to the test above.
/// MariaDB stores no infinity: a row's ±inf price is stored, and seen by the
/// oracle, as ±`f64::MAX` (literal and bound infinities in queries stay).
#[test]
fn random_queries_agree_on_mariadb() {
    run(Coverage::MariaDb, env_u64("MEMDEX_DIFF_CASES", 1000) as u32, env_u64("MEMDEX_DIFF_SEED", 0x5eed));
}

/// The soak run (docs/soak.md): as many cases as `MEMDEX_DIFF_CASES` (default
/// 20 000), seed from `MEMDEX_DIFF_SEED` (default: the clock, printed).
#[test]
#[ignore = "soak run: see docs/soak.md"]
fn soak() {
    let seed = std::env::var("MEMDEX_DIFF_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_secs())
    });
    run(Coverage::Full, env_u64("MEMDEX_DIFF_CASES", 20_000) as u32, seed);
}

/// The oracle itself against hand-computed answers, so that a wrong oracle cannot
/// make every path look right (or wrong) together.
#[test]
fn oracle_knows_rusts_semantics() {
    let r = Row { qty: i64::MAX, name: "Éa".into(), note: None, grp: Some(2), price: -0.0, ..row(1) };
    let lit = |v: i64| I::Leaf(Leaf { v, param: false });
    // Overflow: the comparison is false, and its negation true.
    let overflow = B::CmpI(CmpOp::Gt, I::Arith(ArithOp::Add, Box::new(I::Col(QTY)), Box::new(lit(1))), lit(0));
    assert!(!ev_b(&overflow, &r));
    assert!(ev_b(&B::Not(Box::new(overflow)), &r));
    // Division truncates toward zero; the remainder takes the dividend's sign.
    let div = B::CmpI(CmpOp::Eq, I::Arith(ArithOp::Div, Box::new(lit(-7)), Box::new(lit(2))), lit(-3));
    let rem = B::CmpI(CmpOp::Eq, I::Arith(ArithOp::Rem, Box::new(lit(-7)), Box::new(lit(2))), lit(-1));
    assert!(ev_b(&div, &r) && ev_b(&rem, &r));
    // Floats: a non-finite result is undefined (false, its `not` true); underflow
    // to zero and a stored infinity are values.
    let flit = |v: f64| F::Leaf(Leaf { v, param: false });
    let huge = Row { price: f64::MAX, ..r.clone() };
    let times_two = B::CmpF(CmpOp::Gt, F::Arith(ArithOp::Mul, Box::new(F::Col), Box::new(flit(2.0))), flit(0.0));
    assert!(!ev_b(&times_two, &huge) && ev_b(&B::Not(Box::new(times_two)), &huge));
    let by_zero = B::CmpF(CmpOp::Ne, F::Arith(ArithOp::Div, Box::new(flit(1.0)), Box::new(F::Col)), flit(0.0));
    assert!(!ev_b(&by_zero, &r), "1.0 / -0.0 is -inf: undefined");
    let tiny = Row { price: 5e-324, ..r.clone() };
    let underflow = B::CmpF(CmpOp::Eq, F::Arith(ArithOp::Mul, Box::new(F::Col), Box::new(flit(0.5))), flit(0.0));
    assert!(ev_b(&underflow, &tiny));
    let inf = Row { price: f64::INFINITY, ..r.clone() };
    assert!(ev_b(&B::CmpF(CmpOp::Gt, F::Col, flit(f64::MAX)), &inf));
    assert!(!ev_b(&B::CmpF(CmpOp::Gt, F::Neg(Box::new(F::Neg(Box::new(F::Col)))), flit(0.0)), &inf));
    // -0.0 == 0.0; len counts bytes; lower is Unicode; ieq is ASCII-only.
    assert!(ev_b(&B::CmpF(CmpOp::Eq, F::Col, F::Leaf(Leaf { v: 0.0, param: false })), &r));
    assert!(ev_b(&B::CmpI(CmpOp::Eq, I::Len(NAME), lit(3)), &r));
    let lower = B::CmpT(CmpOp::Eq, T::Lower(NAME), T::Leaf(Leaf { v: "éa".into(), param: false }));
    assert!(ev_b(&lower, &r));
    assert!(!ev_b(&B::IEq(T::Col(NAME), Leaf { v: "éA".into(), param: false }), &r));
    // Nullable: None != Some(x); None is None.
    assert!(ev_b(&B::OptT { ne: true, v: Leaf { v: "x".into(), param: false } }, &r));
    assert!(ev_b(&B::IsNull { col: NOTE, negated: false }, &r));
    assert!(!ev_b(&B::OptI { ne: false, v: None }, &r));
    // Rendering: parameters are bound, literals escaped.
    let mut render = Render::default();
    let text = render.b(&B::Str(StrOp::Contains, T::Col(NAME), Leaf { v: "a'\\".into(), param: false }));
    assert_eq!(text, "('a\\'\\\\' in r.name)");
    assert_eq!(
        render.b(&B::InI { col: CAT, list: List::Items(vec![Leaf { v: 5, param: true }], false), negated: true }),
        "(r.cat not in (p0,))"
    );
    assert_eq!(render.params, vec![("p0".to_owned(), Value::Int(5))]);
}

/// Exploration aid (not a check): runs random cases without stopping or shrinking,
/// and prints the first line of every disagreement, to survey what is wrong at once.
/// `MEMDEX_DIFF_CASES=300 cargo test -p memdex-tests --test differential -- --ignored explore --nocapture`
#[test]
#[ignore = "exploration aid: prints disagreements, asserts nothing"]
fn explore() {
    use proptest::strategy::ValueTree;
    let mut world = World::new(Coverage::Full);
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[env_u64("MEMDEX_DIFF_SEED", 1) as u8; 32]),
    );
    let strategy = case();
    for n in 0..env_u64("MEMDEX_DIFF_CASES", 200) {
        let Ok(tree) = strategy.new_tree(&mut runner) else { continue };
        let case = tree.current();
        let mut rows: Vec<Row> = Vec::new();
        for r in case.rows {
            rows.retain(|x| x.id != r.id);
            rows.push(r);
        }
        if let Err(e) = world.load(&rows) {
            println!("case {n}: load: {}", e.lines().next().unwrap_or(""));
            continue;
        }
        for q in &case.queries {
            if let Err(e) = probe(&mut world, &q.probe(), &|r| ev_b(&q.pred, r)) {
                let lines: Vec<&str> = e.lines().collect();
                let tail = lines
                    .iter()
                    .rev()
                    .find(|l| {
                        l.contains("SQL failed")
                            || l.contains("expected")
                            || l.contains("error")
                            || l.contains("rejected")
                    })
                    .unwrap_or(&"");
                println!("case {n}: {} | {} | {}", lines.first().unwrap_or(&""), lines.get(1).unwrap_or(&""), tail);
                if e.contains("got ids") || e.contains("differs") {
                    println!("{e}\n----");
                }
            }
        }
    }
}
