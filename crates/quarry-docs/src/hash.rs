//! Content hashes: SHA-256 in lowercase hex, of files (is it the version already ingested?) and
//! of chunks (exact duplicates, after [`normalize`]).

use sha2::{Digest, Sha256};

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// `text` as compared for exact duplicates: lowercased, whitespace runs as one space, trimmed.
pub fn normalize(text: &str) -> String {
    text.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest_and_normal_form() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(normalize("  The\n\tCat  sat "), "the cat sat");
    }
}
