//! Support for the code `memdex-macros` generates. Not public API: names and
//! signatures here change with the macros.

pub use const_panic;
pub use memdex_grammar as grammar;

pub use crate::query::{Compiled, compile, compile_view, scan, select, view};

use memdex_grammar::Value;

/// One index as `select!`'s const check sees it: column field names, and the
/// prefix length (0: not a prefix index).
#[derive(Clone, Copy, Debug)]
pub struct IndexInfo {
    pub columns: &'static [&'static str],
    pub prefix: u32,
}

/// Marks a `starts_with` pattern whose length is only known at run time.
pub const RUNTIME_PREFIX: u32 = u32::MAX;

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

const fn contains(list: &[&str], s: &str) -> bool {
    let mut i = 0;
    while i < list.len() {
        if str_eq(list[i], s) {
            return true;
        }
        i += 1;
    }
    false
}

/// Whether some index (or the key) is covered by a disjunct's equality criteria.
/// `eq`: fields with `==`, `in` or `is_none` criteria; `prefix`: fields with a
/// `starts_with` criterion and the pattern's length in chars ([`RUNTIME_PREFIX`]
/// when it is a captured value: the runtime checks it, and answers from the
/// database when it is too short). Mirrors `memdex_grammar::plan`'s rule.
pub const fn indexable(indexes: &[IndexInfo], eq: &[&str], prefix: &[(&str, u32)]) -> bool {
    let mut i = 0;
    while i < indexes.len() {
        let ix = indexes[i];
        if ix.prefix > 0 && ix.columns.len() == 1 {
            let mut j = 0;
            while j < prefix.len() {
                if str_eq(prefix[j].0, ix.columns[0]) && prefix[j].1 >= ix.prefix {
                    return true;
                }
                j += 1;
            }
        }
        let mut covered = true;
        let mut c = 0;
        while c < ix.columns.len() {
            if !contains(eq, ix.columns[c]) {
                covered = false;
            }
            c += 1;
        }
        if covered && ix.prefix == 0 {
            return true;
        }
        i += 1;
    }
    false
}

/// The const assertion `select!` emits once per disjunct, spanned at the disjunct.
/// The message is `before + index_list + after` (see
/// `memdex_grammar::plan::unindexable_message`), so it reads the same as the text
/// form's `Error::Unindexable`.
pub const fn assert_indexable(
    indexes: &[IndexInfo],
    eq: &[&str],
    prefix: &[(&str, u32)],
    before: &str,
    index_list: &str,
    after: &str,
) {
    if !indexable(indexes, eq, prefix) {
        const_panic::concat_panic!(before, index_list, after);
    }
}

/// Converts a captured value into a bound parameter.
pub trait ToValue {
    fn to_value(&self) -> Value;
}

macro_rules! to_value_via_into {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value { Value::from(self.clone()) }
        }
    )*};
}
to_value_via_into!(i8, i16, i32, i64, u8, u16, u32, f32, f64, bool, String);

impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_owned())
    }
}
impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}
impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}
impl<T: ToValue> ToValue for [T] {
    fn to_value(&self) -> Value {
        Value::List(self.iter().map(ToValue::to_value).collect())
    }
}
impl<T: ToValue, const N: usize> ToValue for [T; N] {
    fn to_value(&self) -> Value {
        self.as_slice().to_value()
    }
}
impl<T: ToValue> ToValue for Vec<T> {
    fn to_value(&self) -> Value {
        self.as_slice().to_value()
    }
}

/// `to_value(&expr)` in generated code.
pub fn to_value<V: ToValue + ?Sized>(v: &V) -> Value {
    v.to_value()
}
