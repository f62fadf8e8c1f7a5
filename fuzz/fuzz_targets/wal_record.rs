//! Fuzz target: write-ahead log decoding. The input is decoded as one engine WAL operation
//! (`quarry_engine::Op::decode`), and written as a log file that `quarry_store::Wal::open` replays
//! (every replayed record is decoded as an operation too). Nothing may panic; an accepted
//! operation re-encodes canonically; a log built from whole records replays exactly those
//! records, and a damaged one replays a prefix of them or is refused.
//!
//! Input: `[mode][rest]`. Mode 0: `rest` is the file. Mode 1: a valid header naming the first
//! sequence number `rest[0..8]`, then `rest[8..]` raw. Mode 2: `rest = [damage][first seq u64]
//! [position u16][records]`, records as u16-length-prefixed chunks, framed with correct checksums
//! from the first sequence number on, then damaged (0: none, 1: cut at the position, 2: a byte
//! flipped there, 3: garbage appended).
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use quarry_engine::Op;
use quarry_store::wal::{Durability, Wal, HEADER, MAGIC, MAX_FIRST_SEQ, VERSION};
use quarry_store::{checksum, checksum_append};
use std::path::PathBuf;
use std::sync::OnceLock;

static DIR: OnceLock<PathBuf> = OnceLock::new();

/// Decodes `bytes` as an operation; an accepted one must re-encode canonically.
fn check_op(bytes: &[u8]) {
    if let Ok(op) = Op::decode(bytes) {
        let once = op.encode();
        let again = Op::decode(&once).expect("an encoded operation decodes");
        assert_eq!(again.encode(), once, "encoding is canonical after one round trip");
    }
}

fn header(first: u64) -> Vec<u8> {
    let mut h = vec![0u8; HEADER as usize];
    h[..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&first.to_le_bytes());
    let c = checksum(&h[..28]);
    h[28..32].copy_from_slice(&c.to_le_bytes());
    h
}

fn frame(buf: &mut Vec<u8>, seq: u64, p: &[u8]) {
    let s = seq.to_le_bytes();
    buf.extend_from_slice(&(p.len() as u32).to_le_bytes());
    buf.extend_from_slice(&checksum_append(checksum(&s), p).to_le_bytes());
    buf.extend_from_slice(&s);
    buf.extend_from_slice(p);
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        x.copy_from_slice(s);
    }
    u64::from_le_bytes(x)
}

fuzz_target!(|data: &[u8]| {
    check_op(data);
    let Some((&mode, rest)) = data.split_first() else { return };
    let path = DIR.get_or_init(|| common::scratch("wal_record")).join("wal.log");
    // The file, and for mode 2 the records it was built from with the damage kind.
    let (file, built) = match mode % 3 {
        0 => (rest.to_vec(), None),
        1 => {
            let mut f = header(u64_at(rest, 0));
            f.extend_from_slice(rest.get(8..).unwrap_or_default());
            (f, None)
        }
        _ => {
            let damage = rest.first().copied().unwrap_or(0) % 4;
            let first = u64_at(rest, 1);
            let pos = rest.get(9..11).map_or(0, |p| u16::from_le_bytes([p[0], p[1]]) as usize);
            let records = common::chunks(rest.get(11..).unwrap_or_default());
            let mut f = header(first);
            let start = first.max(1);
            for (i, r) in records.iter().enumerate() {
                frame(&mut f, start.wrapping_add(i as u64), r);
            }
            match damage {
                1 => f.truncate(pos % (f.len() + 1)),
                2 => {
                    let at = pos % f.len();
                    f[at] ^= 0x5a;
                }
                3 => f.extend(std::iter::repeat_n(0xffu8, pos % 64 + 1)),
                _ => {}
            }
            (f, Some((damage, start, records)))
        }
    };
    std::fs::write(&path, &file).expect("write the log file");
    let opened = Wal::open(&path, Durability::Buffered);
    if let Ok((_, records)) = &opened {
        for (_, payload) in records {
            check_op(payload);
        }
    }
    let Some((damage, start, built)) = built else { return };
    // A header numbering past MAX_FIRST_SEQ is refused (the numbering could overflow).
    if start > MAX_FIRST_SEQ {
        assert!(opened.is_err(), "a first record number past MAX_FIRST_SEQ is refused");
        return;
    }
    match (&opened, damage) {
        (Err(e), 0 | 3) => panic!("a log of whole records was refused: {e}"),
        (Err(_), _) => {}
        (Ok((_, records)), _) => {
            let whole = matches!(damage, 0 | 3);
            assert!(if whole { records.len() == built.len() } else { records.len() <= built.len() });
            for (i, (seq, payload)) in records.iter().enumerate() {
                assert_eq!(*seq, start + i as u64, "consecutive sequence numbers");
                assert_eq!(payload, &built[i], "record {i} replays as written");
            }
        }
    }
    // Appending after the replay (a torn tail was cut) and reopening gives one more record.
    if let Ok((mut wal, records)) = opened {
        let seq = wal.append(&[b"fuzz".as_slice()]).expect("append after replay");
        assert_eq!(seq, start + records.len() as u64);
        drop(wal);
        let (_, again) = Wal::open(&path, Durability::Buffered).expect("reopen after append");
        assert_eq!(again.len(), records.len() + 1);
        assert_eq!(again.last().map(|r| r.1.as_slice()), Some(b"fuzz".as_slice()));
    }
});
