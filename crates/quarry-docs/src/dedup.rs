//! Duplicate chunks: exact ones by the hash of their normalised text, near ones by 64-bit SimHash
//! fingerprints (Charikar, 2002) of word 3-shingles, within a Hamming distance (3 of 64 bits:
//! Manku, Jain & Das Sarma, 2007, for near-duplicate web pages). [`NearDuplicates`] finds a
//! fingerprint's near neighbours through band tables: with the 64 bits cut into `d + 1` bands,
//! two fingerprints within distance `d` agree exactly on at least one band.

use crate::hash::normalize;
use std::collections::HashMap;

/// The SimHash fingerprint of `text`: each word 3-shingle (words of the normalised text; a text
/// of fewer words is one shingle) hashed to 64 bits, bit `i` set where more shingles have it set
/// than not.
pub fn simhash(text: &str) -> u64 {
    let norm = normalize(text);
    let words: Vec<&str> = norm.split(' ').filter(|w| !w.is_empty()).collect();
    if words.is_empty() {
        return 0;
    }
    let mut votes = [0i32; 64];
    let n = words.len().saturating_sub(2).max(1);
    for i in 0..n {
        let shingle = &words[i..(i + 3).min(words.len())];
        let h = fnv64(shingle);
        for (b, v) in votes.iter_mut().enumerate() {
            *v += if h >> b & 1 == 1 { 1 } else { -1 };
        }
    }
    votes.iter().enumerate().fold(0u64, |acc, (b, &v)| if v > 0 { acc | 1 << b } else { acc })
}

/// FNV-1a over the words (a separator between them), then a 64-bit finalizer (splitmix64) so
/// every bit depends on every byte.
fn fnv64(words: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for w in words {
        for b in w.bytes().chain(std::iter::once(0x1f)) {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// A set of fingerprints with their owners, answering "which one is within `distance` bits of
/// this?" (see the module docs).
#[derive(Debug, Clone)]
pub struct NearDuplicates<T> {
    distance: u32,
    bands: Vec<(u32, u32)>,
    tables: Vec<HashMap<u64, Vec<usize>>>,
    items: Vec<(u64, T)>,
}

impl<T: Clone> NearDuplicates<T> {
    /// An empty set matching within `distance` bits (at most 16).
    pub fn new(distance: u32) -> NearDuplicates<T> {
        let distance = distance.min(16);
        let n = distance + 1;
        let bands = (0..n).map(|i| (64 * i / n, 64 * (i + 1) / n)).collect::<Vec<_>>();
        NearDuplicates { distance, tables: vec![HashMap::new(); bands.len()], bands, items: Vec::new() }
    }

    fn band(&self, fp: u64, i: usize) -> u64 {
        let (lo, hi) = self.bands[i];
        let width = hi - lo;
        let mask = if width >= 64 { u64::MAX } else { (1u64 << width) - 1 };
        fp >> lo & mask
    }

    /// The owner of a fingerprint within the distance of `fp` (the closest, the earliest among
    /// equals), and the distance.
    pub fn find(&self, fp: u64) -> Option<(T, u32)> {
        let mut best: Option<(usize, u32)> = None;
        for (i, table) in self.tables.iter().enumerate() {
            for &j in table.get(&self.band(fp, i)).into_iter().flatten() {
                let d = (self.items[j].0 ^ fp).count_ones();
                if d <= self.distance && best.is_none_or(|(bj, bd)| (d, j) < (bd, bj)) {
                    best = Some((j, d));
                }
            }
        }
        best.map(|(j, d)| (self.items[j].1.clone(), d))
    }

    /// Adds fingerprint `fp` owned by `owner`.
    pub fn insert(&mut self, fp: u64, owner: T) {
        let j = self.items.len();
        self.items.push((fp, owner));
        for i in 0..self.tables.len() {
            let key = self.band(fp, i);
            self.tables[i].entry(key).or_default().push(j);
        }
    }

    /// How many fingerprints it holds.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn near_copies_are_close_and_different_texts_far() {
        let a = "The quick brown fox jumps over the lazy dog near the river bank on a sunny afternoon in May";
        let b =
            "The quick brown fox jumps over the lazy dog near the river bank on a sunny afternoon in June";
        let c = "Retrieval engines rank passages by the similarity of their embeddings to the query";
        assert_eq!(simhash(a), simhash(&a.to_uppercase().replace(' ', "  ")), "normalised first");
        let (ab, ac) = ((simhash(a) ^ simhash(b)).count_ones(), (simhash(a) ^ simhash(c)).count_ones());
        assert!(ab <= 8 && ac > 16, "a~b {ab}, a~c {ac}");
    }

    proptest! {
        /// The band tables find exactly what a scan of every fingerprint finds.
        #[test]
        fn bands_agree_with_a_scan(fps in proptest::collection::vec(any::<u64>(), 1..60), flips in proptest::collection::vec((0usize..60, 0u32..64), 0..80), d in 0u32..6) {
            let mut fps = fps;
            let n = fps.len();
            for (i, bit) in flips { let base = fps[i % n]; fps.push(base ^ (1 << bit)); }
            let mut set = NearDuplicates::new(d);
            for (j, &fp) in fps.iter().enumerate() {
                let scan = fps[..j].iter().enumerate()
                    .map(|(k, &g)| ((g ^ fp).count_ones(), k))
                    .filter(|&(dist, _)| dist <= d)
                    .min();
                let found = set.find(fp).map(|(k, dist)| (dist, k));
                prop_assert_eq!(found, scan);
                set.insert(fp, j);
            }
        }
    }
}
