//! Every slot's payload as compact JSON bytes, parsed when read (a parsed map costs several
//! hundred bytes even for three small keys). Sealed points' payloads are not copied into
//! memory: they are byte ranges of their segment's points file, memory-mapped (page cache,
//! which the OS may evict and re-read), checksummed when the segment was opened. Payloads of
//! unsealed points live in one heap arena. A slot costs 16 bytes of RAM beside its bytes.

use serde_json::{Map, Value};
use std::sync::Arc;

/// Bytes that payload ranges point into: a mapped points file (or, for old segments, a buffer).
pub(crate) type Source = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// Source number of the heap arena.
const ARENA: u32 = u32::MAX;

/// Where one slot's payload is: `len` bytes at `off` in source `src` (`len` 0: empty payload).
#[derive(Debug, Clone, Copy)]
struct Ref {
    src: u32,
    len: u32,
    off: u64,
}

const EMPTY: Ref = Ref { src: ARENA, len: 0, off: 0 };

/// The payload of every slot, by slot.
#[derive(Default)]
pub(crate) struct Payloads {
    refs: Vec<Ref>,
    /// Mapped points files (`None`: no slot points into it any more, unmapped).
    sources: Vec<Option<Source>>,
    arena: Vec<u8>,
}

impl std::fmt::Debug for Payloads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Payloads({} slots, {} sources, {} arena bytes)",
            self.refs.len(),
            self.sources.len(),
            self.arena.len()
        )
    }
}

impl Payloads {
    /// Appends the payload of the next slot (kept in the arena).
    pub(crate) fn push(&mut self, p: &Map<String, Value>) {
        if p.is_empty() {
            self.refs.push(EMPTY);
            return;
        }
        let off = self.arena.len();
        // Writing a map of JSON values to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.arena, p);
        let len = self.arena.len() - off;
        match u32::try_from(len) {
            Ok(len) => self.refs.push(Ref { src: ARENA, len, off: off as u64 }),
            Err(_) => {
                self.arena.truncate(off);
                self.refs.push(EMPTY);
            }
        }
    }

    /// Registers a source of payload bytes; returns its number for [`Payloads::push_range`].
    pub(crate) fn add_source(&mut self, s: Source) -> u32 {
        self.sources.push(Some(s));
        (self.sources.len() - 1) as u32
    }

    /// Appends the payload of the next slot: `len` bytes at `off` in source `src` (JSON of an
    /// object, checked by the caller).
    pub(crate) fn push_range(&mut self, src: u32, off: u64, len: u32) {
        let r = Ref { src, len, off };
        self.refs.push(if self.bytes_of(r) == b"{}" { EMPTY } else { r });
    }

    /// Points each of `slots` at its range in source `src` (`ranges[i]` for `slots[i]`), and
    /// the slots in `dead` at nothing (their payloads are never read again); then drops arena
    /// bytes and sources no slot points into.
    pub(crate) fn repoint(
        &mut self,
        slots: &[u32],
        src: u32,
        ranges: &[(u64, u32)],
        dead: impl Iterator<Item = u32>,
    ) {
        for (&s, &(off, len)) in slots.iter().zip(ranges) {
            if let Some(r) = self.refs.get_mut(s as usize) {
                *r = if len == 0 || r.len == 0 { EMPTY } else { Ref { src, len, off } };
            }
        }
        for s in dead {
            if let Some(r) = self.refs.get_mut(s as usize) {
                *r = EMPTY;
            }
        }
        let mut used = vec![false; self.sources.len()];
        let mut arena = Vec::new();
        for r in &mut self.refs {
            if r.len == 0 {
                continue;
            }
            if r.src == ARENA {
                let (a, b) = (r.off as usize, r.off as usize + r.len as usize);
                r.off = arena.len() as u64;
                arena.extend_from_slice(self.arena.get(a..b).unwrap_or_default());
            } else if let Some(u) = used.get_mut(r.src as usize) {
                *u = true;
            }
        }
        self.arena = arena;
        for (s, u) in self.sources.iter_mut().zip(used) {
            if !u {
                *s = None;
            }
        }
    }

    fn bytes_of(&self, r: Ref) -> &[u8] {
        let (a, b) = (r.off as usize, r.off as usize + r.len as usize);
        let all: &[u8] = match r.src {
            ARENA => &self.arena,
            s => match self.sources.get(s as usize) {
                Some(Some(src)) => src.as_ref().as_ref(),
                _ => &[],
            },
        };
        all.get(a..b).unwrap_or_default()
    }

    /// The JSON bytes of `slot`'s payload (empty for an empty payload or an unknown slot).
    pub(crate) fn bytes(&self, slot: u32) -> &[u8] {
        self.refs.get(slot as usize).map_or(&[], |&r| self.bytes_of(r))
    }

    /// The payload of `slot` (empty if unknown; the bytes were checked to be a JSON object
    /// when written or when their segment was opened, so they parse).
    pub(crate) fn get(&self, slot: u32) -> Map<String, Value> {
        match self.bytes(slot) {
            [] => Map::new(),
            b => serde_json::from_slice(b).unwrap_or_default(),
        }
    }

    /// Whether the payload of `slot` has top-level `key`.
    pub(crate) fn contains_key(&self, slot: u32, key: &str) -> bool {
        self.get(slot).contains_key(key)
    }

    /// Releases spare capacity.
    pub(crate) fn shrink_to_fit(&mut self) {
        self.refs.shrink_to_fit();
        self.arena.shrink_to_fit();
    }

    /// Slots held.
    pub(crate) fn len(&self) -> usize {
        self.refs.len()
    }

    /// Bytes held in memory (16 per slot and the arena; mapped bytes are page cache).
    pub(crate) fn memory_bytes(&self) -> usize {
        self.refs.capacity() * std::mem::size_of::<Ref>() + self.arena.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn arena_sources_and_repointing() {
        let mut p = Payloads::default();
        p.push(&obj(json!({"a": 1})));
        p.push(&Map::new());
        p.push(&obj(json!({"b": "x"})));
        let file: Vec<u8> = br#"..{"a":1}..{}..{"c":[1,2]}"#.to_vec();
        let src = p.add_source(Arc::new(file));
        p.push_range(src, 2, 7);
        p.push_range(src, 11, 2);
        p.push_range(src, 15, 11);
        assert_eq!(p.len(), 6);
        assert_eq!(p.get(0), obj(json!({"a": 1})));
        assert!(p.get(1).is_empty());
        assert_eq!(p.get(2), obj(json!({"b": "x"})));
        assert_eq!(p.get(3), obj(json!({"a": 1})));
        assert!(p.get(4).is_empty() && p.bytes(4).is_empty());
        assert_eq!(p.get(5), obj(json!({"c": [1, 2]})));
        assert!(p.get(99).is_empty());
        // Slots 0 and 3 move into a new file; slot 5 dies: the first source is unmapped, the
        // arena keeps slot 2 alone.
        let file2: Vec<u8> = br#"{"a":1}|{"a":1}"#.to_vec();
        let src2 = p.add_source(Arc::new(file2));
        p.repoint(&[0, 3], src2, &[(0, 7), (8, 7)], [5u32].into_iter());
        assert_eq!(p.get(0), obj(json!({"a": 1})));
        assert_eq!(p.get(2), obj(json!({"b": "x"})));
        assert_eq!(p.get(3), obj(json!({"a": 1})));
        assert!(p.get(5).is_empty());
        assert!(p.sources[0].is_none() && p.sources[1].is_some());
        assert_eq!(p.arena, br#"{"b":"x"}"#);
    }
}
