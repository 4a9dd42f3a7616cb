//! Integers spelled in decimal without the `fmt` machinery or a temporary `String`.
//! Cache keys, node records, memcached commands and SQL placeholders spell numbers
//! on every fetch, and `fmt` was a visible part of a hot read's profile.

/// The decimal digits of a `u64`, held on the stack.
#[derive(Clone, Copy, Debug)]
pub struct Digits {
    buf: [u8; 20],
    start: usize,
}

impl Digits {
    pub fn new(mut n: u64) -> Digits {
        // `u64::MAX` has 20 digits.
        let mut buf = [0u8; 20];
        let mut start = buf.len();
        loop {
            start -= 1;
            // `n % 10` is below 10, so the cast is exact.
            buf[start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        Digits { buf, start }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }

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
