//! String building without `core::fmt`.
//!
//! The widget's wasm carries no formatting machinery when nothing on its path uses
//! `format!`: that was the largest block of code left after the config reader (measured
//! with twiggy). Config problems' prose (`message!`) is formatted only in the linter's build.

use alloc::string::String;

/// The parts, joined.
pub fn concat(parts: &[&str]) -> String {
    let mut out = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for part in parts {
        out.push_str(part);
    }
    out
}

/// `n` in decimal digits.
pub fn decimal(mut n: u64) -> String {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    digits[at..].iter().map(|d| *d as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_matches_display() {
        for n in [0, 7, 10, 99, 404, 1_000_000, u64::MAX] {
            assert_eq!(decimal(n), alloc::format!("{n}"));
        }
    }

    #[test]
    fn concat_joins() {
        assert_eq!(concat(&["a", "", "bc"]), "abc");
    }
}
