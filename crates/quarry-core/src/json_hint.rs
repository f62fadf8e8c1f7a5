//! Explaining JSON syntax errors that come from non-finite numbers. JSON has no NaN or infinity,
//! so `[0.1, NaN]` or `1e999` fail to parse with a generic message ("expected value", "number
//! out of range"); every front end that parses vectors adds this hint to such errors.

/// The sentence added to a JSON parse error caused by a non-finite number.
pub const NON_FINITE_HINT: &str =
    "non-finite values (NaN, Infinity, or numbers beyond the f64 range) are not allowed: vectors and numbers must be finite";

/// [`NON_FINITE_HINT`] when the parse error `message` at 1-based `line` and `column` of `text`
/// comes from a non-finite number (NaN, Infinity, inf, or a number out of range), else `None`.
pub fn non_finite_hint(text: &[u8], line: usize, column: usize, message: &str) -> Option<&'static str> {
    if message.contains("number out of range") {
        return Some(NON_FINITE_HINT);
    }
    // Byte offset of the error position.
    let mut at = 0usize;
    for _ in 1..line {
        match text[at..].iter().position(|&b| b == b'\n') {
            Some(p) => at += p + 1,
            None => return None,
        }
    }
    at = at.saturating_add(column.saturating_sub(1)).min(text.len());
    let from = at.saturating_sub(12);
    let to = at.saturating_add(12).min(text.len());
    let near = String::from_utf8_lossy(&text[from..to]).to_ascii_lowercase();
    (near.contains("nan") || near.contains("inf")).then_some(NON_FINITE_HINT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint(text: &str) -> Option<&'static str> {
        let e = serde_json_like_position(text);
        non_finite_hint(text.as_bytes(), e.0, e.1, e.2)
    }

    /// Where serde_json reports these errors (line, column of the offending character).
    fn serde_json_like_position(text: &str) -> (usize, usize, &'static str) {
        let at = text.find(['N', 'I', 'i']).unwrap_or(0);
        let line = text[..at].matches('\n').count() + 1;
        let col = at - text[..at].rfind('\n').map_or(0, |p| p + 1) + 1;
        (line, col, "expected value")
    }

    #[test]
    fn non_finite_literals_get_the_hint() {
        assert_eq!(hint("{\"vector\": [0.1, NaN]}"), Some(NON_FINITE_HINT));
        assert_eq!(hint("{\"a\": 1}\n{\"vector\": [Infinity]}"), Some(NON_FINITE_HINT));
        assert_eq!(hint("[-inf]"), Some(NON_FINITE_HINT));
        assert_eq!(non_finite_hint(b"[1e999]", 1, 6, "number out of range"), Some(NON_FINITE_HINT));
        assert_eq!(non_finite_hint(b"{\"a\": tru}", 1, 9, "expected ident"), None);
        assert_eq!(non_finite_hint(b"", 3, 9, "EOF"), None);
    }
}
