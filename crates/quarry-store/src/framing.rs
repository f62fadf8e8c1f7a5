//! Sectioned file framing shared by Quarry's index files (spec: docs/FORMAT.md, "Framing").
//!
//! A 256-byte header — magic (8), version (4), header length (4), 40 bytes of format-specific
//! fields, a table of up to five sections (kind, offset, length, CRC32C), and the header's own
//! CRC32C in its last 4 bytes — followed by the sections at 64-byte aligned offsets. Writing is
//! crash-safe. Opening checks magic, version, header checksum and that every section lies in the
//! file; each section's checksum is checked when it is read ([`Framed::read`]) or on demand
//! ([`Framed::verify`]), so a large section can be memory-mapped without reading it first.

use crate::source::ByteSource;
use crate::{checksum, le, AtomicFile};
use quarry_core::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Header length in bytes.
pub const HEADER_LEN: usize = 256;
/// Bytes of format-specific fields in the header (at offset 16).
pub const FIELDS_LEN: usize = 40;
/// Most sections a file can have.
pub const MAX_SECTIONS: usize = 5;

/// Where a section lies and its checksum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Section {
    /// Byte offset in the file (a multiple of 64).
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// CRC32C of the section's bytes.
    pub crc: u32,
}

/// Writes a framed file: `sections` in order, the first at `first_at` (rounded up to 64).
pub fn write_framed(
    path: &Path,
    magic: [u8; 8],
    version: u32,
    fields: &[u8; FIELDS_LEN],
    sections: &[&[u8]],
    first_at: u64,
) -> Result<()> {
    if sections.len() > MAX_SECTIONS {
        return Err(Error::InvalidArgument(format!("at most {MAX_SECTIONS} sections")));
    }
    let mut table = Vec::with_capacity(sections.len());
    let mut at = first_at.max(HEADER_LEN as u64).next_multiple_of(64);
    for body in sections {
        table.push(Section { offset: at, len: body.len() as u64, crc: checksum(body) });
        at = (at + body.len() as u64).next_multiple_of(64);
    }
    let mut h = Vec::with_capacity(HEADER_LEN);
    h.extend_from_slice(&magic);
    h.extend_from_slice(&version.to_le_bytes());
    h.extend_from_slice(&(HEADER_LEN as u32).to_le_bytes());
    h.extend_from_slice(fields);
    h.extend_from_slice(&(sections.len() as u32).to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    for (kind, s) in table.iter().enumerate() {
        h.extend_from_slice(&(kind as u32 + 1).to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&s.offset.to_le_bytes());
        h.extend_from_slice(&s.len.to_le_bytes());
        h.extend_from_slice(&s.crc.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
    }
    h.resize(HEADER_LEN - 4, 0);
    let crc = checksum(&h);
    h.extend_from_slice(&crc.to_le_bytes());

    let mut out = AtomicFile::create(path)?;
    out.write_bytes(&h)?;
    let mut written = HEADER_LEN as u64;
    for (s, body) in table.iter().zip(sections) {
        out.write_bytes(&vec![0u8; (s.offset - written) as usize])?;
        out.write_bytes(body)?;
        written = s.offset + s.len;
    }
    out.commit()
}

/// The header checksum of the framed file at `path` (its header's last 4 bytes): identifies one
/// written version of the file, so that files written together can record each other's.
pub fn header_crc(path: &Path) -> Result<u32> {
    let mut h = [0u8; HEADER_LEN];
    crate::source::open(path)?
        .read_exact_at(&mut h, 0)
        .map_err(|e| Error::io("reading the header of", path, e))?;
    Ok(le::u32_at(&h, HEADER_LEN - 4).unwrap_or(0))
}

/// An opened framed file whose header has been checked.
#[derive(Debug)]
pub struct Framed {
    path: PathBuf,
    source: Arc<dyn ByteSource>,
    /// Format version found.
    pub version: u32,
    /// The format-specific header fields.
    pub fields: [u8; FIELDS_LEN],
    /// The section table.
    pub sections: Vec<Section>,
}

impl Framed {
    /// Opens `path`, checking the magic (`what` names the file kind in errors), that the version
    /// is `version`, the header checksum, and that every section lies inside the file.
    pub fn open(path: &Path, magic: [u8; 8], version: u32, what: &str) -> Result<Framed> {
        let bad = |loc: &str, msg: String| Error::corrupt(path, loc, msg);
        let source = crate::source::open(path)?;
        let file_len = source.len();
        let mut h = vec![0u8; HEADER_LEN];
        source
            .read_exact_at(&mut h, 0)
            .map_err(|_| bad("header", format!("file is shorter than the {HEADER_LEN}-byte header")))?;
        if h[..8] != magic {
            return Err(bad("byte 0", format!("not a Quarry {what} file (bad magic number)")));
        }
        let found = le::u32_at(&h, 8).unwrap_or(0);
        if found != version {
            return Err(bad(
                "byte 8",
                format!("unsupported format version {found} (this build reads {version})"),
            ));
        }
        if le::u32_at(&h, HEADER_LEN - 4) != Some(checksum(&h[..HEADER_LEN - 4])) {
            return Err(bad("header", "header checksum mismatch: the file is corrupted".into()));
        }
        let count = le::u32_at(&h, 56).unwrap_or(0) as usize;
        if count > MAX_SECTIONS {
            return Err(bad("header", format!("{count} sections, at most {MAX_SECTIONS}")));
        }
        let mut sections = Vec::with_capacity(count);
        for i in 0..count {
            let at = 64 + i * 32;
            let s = Section {
                offset: le::u64_at(&h, at + 8).unwrap_or(0),
                len: le::u64_at(&h, at + 16).unwrap_or(0),
                crc: le::u32_at(&h, at + 24).unwrap_or(0),
            };
            if !s.offset.is_multiple_of(64) || s.offset.checked_add(s.len).is_none_or(|end| end > file_len) {
                return Err(bad(
                    &format!("section {}", i + 1),
                    "section lies outside the file (truncated?)".into(),
                ));
            }
            sections.push(s);
        }
        let mut fields = [0u8; FIELDS_LEN];
        fields.copy_from_slice(&h[16..16 + FIELDS_LEN]);
        Ok(Framed { path: path.to_path_buf(), source, version: found, fields, sections })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the bytes come from (a local file, or an object read by byte range).
    pub fn source(&self) -> &Arc<dyn ByteSource> {
        &self.source
    }

    fn section(&self, i: usize, name: &str) -> Result<Section> {
        self.sections
            .get(i)
            .copied()
            .ok_or_else(|| Error::corrupt(&self.path, name, format!("section {} is missing", i + 1)))
    }

    /// Reads section `i` (named `name` in errors) and checks its checksum.
    pub fn read(&mut self, i: usize, name: &str) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; self.section_len(i, name)?];
        self.read_into(i, name, &mut buf)?;
        Ok(buf)
    }

    /// Length in bytes of section `i`.
    pub fn section_len(&self, i: usize, name: &str) -> Result<usize> {
        let s = self.section(i, name)?;
        usize::try_from(s.len).map_err(|_| Error::corrupt(&self.path, name, "section too large"))
    }

    /// Reads section `i` into `buf` (exactly [`Framed::section_len`] bytes, e.g. an aligned
    /// buffer, so that a large section is not copied twice) and checks its checksum.
    pub fn read_into(&mut self, i: usize, name: &str, buf: &mut [u8]) -> Result<()> {
        let s = self.section(i, name)?;
        if buf.len() as u64 != s.len {
            return Err(Error::InvalidArgument(format!(
                "section {name} holds {} bytes, the buffer {}",
                s.len,
                buf.len()
            )));
        }
        self.source.read_exact_at(buf, s.offset).map_err(|e| Error::io("reading", &self.path, e))?;
        if checksum(buf) != s.crc {
            return Err(Error::corrupt(&self.path, name, "checksum mismatch: the file is corrupted"));
        }
        Ok(())
    }

    /// Checks section `i`'s checksum, streaming it through memory in 8 MiB pieces.
    pub fn verify(&mut self, i: usize, name: &str) -> Result<()> {
        let s = self.section(i, name)?;
        let mut crc = 0u32;
        let (mut at, mut left) = (s.offset, s.len);
        let mut buf = vec![0u8; 8 << 20];
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            self.source.read_exact_at(&mut buf[..n], at).map_err(|e| Error::io("reading", &self.path, e))?;
            at += n as u64;
            crc = crate::checksum_append(crc, &buf[..n]);
            left -= n as u64;
        }
        if crc != s.crc {
            return Err(Error::corrupt(&self.path, name, "checksum mismatch: the file is corrupted"));
        }
        Ok(())
    }

    /// Memory-maps section `i` copy-on-write (the file is never modified; pages load on touch).
    pub fn map(&self, i: usize, name: &str) -> Result<memmap2::MmapMut> {
        let s = self.section(i, name)?;
        let len =
            usize::try_from(s.len).map_err(|_| Error::corrupt(&self.path, name, "section too large"))?;
        // SAFETY: a private (copy-on-write) mapping of a file we opened read-only. Another process
        // truncating the file while it is mapped would make reads fault — the usual caveat of
        // memory-mapped indexes, documented in docs/FORMAT.md.
        let file = self.source.as_file().ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{}: a file read from object storage cannot be memory-mapped",
                self.path.display()
            ))
        })?;
        unsafe { memmap2::MmapOptions::new().offset(s.offset).len(len).map_copy(file) }
            .map_err(|e| Error::io("memory-mapping", &self.path, e))
    }

    /// [`Framed::map`] for a section read a few scattered bytes at a time: page faults read
    /// only their page (`MADV_RANDOM`), not a read-around window.
    pub fn map_random(&self, i: usize, name: &str) -> Result<memmap2::MmapMut> {
        let map = self.map(i, name)?;
        #[cfg(unix)]
        let _ = map.advise(memmap2::Advice::Random);
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage_detection() {
        let path = std::env::temp_dir().join(format!("quarry-framing-{}", std::process::id()));
        let fields = [7u8; FIELDS_LEN];
        write_framed(&path, *b"QRYTEST\0", 3, &fields, &[b"hello", &[1u8; 1000]], 4096).expect("write");
        let mut f = Framed::open(&path, *b"QRYTEST\0", 3, "test").expect("open");
        assert_eq!((f.version, f.fields, f.sections.len(), f.sections[0].offset), (3, fields, 2, 4096));
        assert_eq!(f.read(0, "greeting").expect("read"), b"hello");
        f.verify(1, "ones").expect("intact");
        assert_eq!(&f.map(1, "ones").expect("map")[..3], &[1, 1, 1]);
        assert!(Framed::open(&path, *b"QRYOTHR\0", 3, "other")
            .expect_err("magic")
            .to_string()
            .contains("magic"));
        assert!(Framed::open(&path, *b"QRYTEST\0", 4, "test")
            .expect_err("version")
            .to_string()
            .contains("version 3"));
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[4096 + 1] ^= 1;
        std::fs::write(&path, &bytes).expect("write");
        let mut f = Framed::open(&path, *b"QRYTEST\0", 3, "test").expect("header intact");
        assert!(f.read(0, "greeting").expect_err("crc").to_string().contains("greeting"));
        bytes[30] ^= 1;
        std::fs::write(&path, &bytes).expect("write");
        assert!(Framed::open(&path, *b"QRYTEST\0", 3, "test")
            .expect_err("header")
            .to_string()
            .contains("header checksum"));
        let _ = std::fs::remove_file(&path);
    }
}
