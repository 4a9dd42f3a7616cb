//! Integers spelled in decimal without the `fmt` machinery or a temporary `String`,
//! through the `itoa` crate. Cache keys, node records, memcached commands and SQL
//! placeholders spell numbers on every fetch, and `fmt` was a visible part of a hot
//! read's profile.
//!
//! Code inside this crate calls [`itoa::Buffer`] directly: it spells a number in
//! about half the time of the per-digit loop this module used to hold (criterion,
//! 100 numbers of up to ten digits: 1.7 µs against 3.6–3.9 µs). [`Digits`] keeps the
//! small owned API the runtime spells its numbers with (`Digits::new(n).as_str()`),
//! so that callers outside this crate need no `itoa` dependency of their own; its
//! copy out of `itoa`'s buffer costs about what `itoa` saves, so it is as fast as
//! the old loop, and a caller that wants the gain calls `itoa` itself.

/// The decimal digits of a `u64`, held on the stack.
///
/// ```
/// use memdex_grammar::decimal::Digits;
///
/// assert_eq!(Digits::new(0).as_str(), "0");
/// assert_eq!(Digits::new(u64::MAX).as_bytes(), b"18446744073709551615");
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Digits {
    /// The digits, left-aligned: `u64::MAX` has 20.
    buf: [u8; 20],
    len: usize,
}

impl Digits {
    /// Spells `n` in decimal, as `n.to_string()` does.
    pub fn new(n: u64) -> Digits {
        let mut itoa = itoa::Buffer::new();
        let text = itoa.format(n).as_bytes();
        let mut buf = [0u8; 20];
        // `itoa` writes at most 20 digits for a `u64`, so the slice always fits.
        let len = text.len().min(buf.len());
        buf[..len].copy_from_slice(&text[..len]);
        Digits { buf, len }
    }

    /// The digits as ASCII bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The digits as a string slice.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits were written, so this never falls back.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::Digits;

    #[test]
    fn spells_as_fmt_does() {
        for n in [0, 1, 9, 10, 99, 100, 12_345, u64::from(u32::MAX), u64::MAX - 1, u64::MAX] {
            assert_eq!(Digits::new(n).as_str(), n.to_string());
            assert_eq!(Digits::new(n).as_bytes(), n.to_string().as_bytes());
        }
    }
}
