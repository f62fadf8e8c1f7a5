//! Little-endian field readers over a byte slice; out-of-range reads are `None`, never a panic.

/// Reads `N` bytes at `at`.
pub fn bytes<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// Reads a little-endian u32 at `at`.
pub fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    bytes::<4>(b, at).map(u32::from_le_bytes)
}

/// Reads a little-endian u64 at `at`.
pub fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    bytes::<8>(b, at).map(u64::from_le_bytes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_or_reports_truncation() {
        let b = [1u8, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(super::u32_at(&b, 0), Some(1));
        assert_eq!(super::u64_at(&b, 4), Some(2));
        assert_eq!(super::u64_at(&b, 5), None);
        assert_eq!(super::u32_at(&b, usize::MAX), None);
    }
}
