//! Source positions carried by every IR node.

/// A half-open byte range `start..end` into the query text.
///
/// The text form stores byte offsets into the lambda source. The macro form has no
/// text to point into, so `query-macros` numbers the syntax nodes it lowers and keeps
/// a side table from that number to the `proc_macro2::Span`: there `start` is the
/// node's number and `end == start + 1`. Either way a span only needs to find its way
/// back to what the user wrote; IR equality between the two forms is compared with
/// [`crate::ir::Expr::without_spans`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    /// The first byte (or the macro node's number).
    pub start: u32,
    /// One past the last byte (or the node's number plus one).
    pub end: u32,
}

impl Span {
    /// The empty span at 0, for nodes built without source (tests, rewrites) and
    /// for comparing IR without positions.
    pub const DUMMY: Span = Span { start: 0, end: 0 };

    /// The span `start..end`; offsets beyond `u32::MAX` are clamped to it.
    ///
    /// ```
    /// use memdex_grammar::Span;
    ///
    /// let source = "lambda c: c.id == 7";
    /// let id = Span::new(10, 14);
    /// assert_eq!(&source[id.range()], "c.id");
    /// assert_eq!(id.join(Span::new(18, 19)).range(), 10..19);
    /// ```
    pub fn new(start: usize, end: usize) -> Span {
        Span { start: saturate(start), end: saturate(end) }
    }

    /// The smallest span covering both.
    pub fn join(self, other: Span) -> Span {
        Span { start: self.start.min(other.start), end: self.end.max(other.end) }
    }

    /// The span as a range, for slicing the source it points into.
    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
