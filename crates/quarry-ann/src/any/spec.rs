//! Index specs: the one parser of the strings that name an index family, `base[+codes]`, used by
//! collections (`schema.json`'s `index`), the CLI and the server. `Display` writes the canonical
//! form, which parses back to the same spec.
//!
//! Bases: `flat` (exact scan), `hnsw` (graph), `spann` (memory+disk posting lists). Codes after
//! `+`: `sq8`, `sq4`, `pq` (dim/4 sub-spaces of 8 bits), `pq<M>` (M sub-spaces), `pq<M>x4`
//! (4-bit), `rabitq` (1 bit per dimension) or `rabitq<B>` (B = 1..8 bits). With `flat` and `hnsw`
//! the codes are searched first and the candidates re-scored from the f32 rows; with `spann`
//! they are the posting entries.

use crate::quant::{QuantParams, QuantSpec};
use quarry_core::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// The structure an index is built on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Base {
    /// Exact scan of every row.
    Flat,
    /// HNSW graph (M = 16, efConstruction = 200).
    Hnsw,
    /// SPANN: heads and their graph in memory, posting lists on disk.
    Spann,
}

impl Base {
    /// The base's name in a spec.
    pub fn name(self) -> &'static str {
        match self {
            Base::Flat => "flat",
            Base::Hnsw => "hnsw",
            Base::Spann => "spann",
        }
    }
}

/// An index family: a base and optional codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexSpec {
    /// The structure.
    pub base: Base,
    /// Compressed codes (`None`: the f32 rows only). A PQ spec with `m == 0` takes dim/4
    /// sub-spaces when built.
    pub codes: Option<QuantSpec>,
}

impl IndexSpec {
    /// A spec without codes.
    pub fn plain(base: Base) -> IndexSpec {
        IndexSpec { base, codes: None }
    }

    /// The quantizer parameters for rows of dimension `dim` (PQ's default sub-space count
    /// resolved), with each family's default re-ranking depth.
    pub fn quant_params(&self, dim: usize) -> Option<QuantParams> {
        self.codes.map(|c| match c {
            QuantSpec::Pq { m: 0, nbits } => QuantParams::new(QuantSpec::Pq { m: (dim / 4).max(1), nbits }),
            c => QuantParams::new(c),
        })
    }

    /// Checks the spec against a dimension (PQ's sub-spaces must divide into it).
    pub fn check_dim(&self, dim: usize) -> Result<()> {
        if let Some(QuantSpec::Pq { m, .. }) = self.quant_params(dim).map(|p| p.spec) {
            if m > dim {
                return Err(Error::InvalidArgument(format!(
                    "index {self}: {m} PQ sub-spaces exceed the dimension {dim}"
                )));
            }
        }
        Ok(())
    }
}

/// Parses the codes part of a spec (`sq8`, `pq48x4`, `rabitq4`, ...).
fn parse_codes(s: &str) -> Result<QuantSpec> {
    let bad = || {
        Error::InvalidArgument(format!(
            "codes {s:?}: use sq8, sq4, pq, pq<M>, pq<M>x4, rabitq or rabitq<B> (B = 1..8)"
        ))
    };
    let num = |t: &str| t.parse::<usize>().map_err(|_| bad());
    match s {
        "sq8" | "sq" => Ok(QuantSpec::Sq { bits: 8 }),
        "sq4" => Ok(QuantSpec::Sq { bits: 4 }),
        _ if s.starts_with("rabitq") => {
            let rest = &s["rabitq".len()..];
            let bits = if rest.is_empty() { 1 } else { num(rest)? };
            match bits {
                1..=8 => Ok(QuantSpec::RaBitQ { bits: bits as u8 }),
                _ => Err(bad()),
            }
        }
        _ if s.starts_with("pq") => {
            let rest = &s["pq".len()..];
            let (m, nbits) = match rest.split_once('x') {
                Some((m, b)) => (m, num(b)?),
                None => (rest, 8),
            };
            let m = if m.is_empty() { 0 } else { num(m)? };
            match nbits {
                4 | 8 => Ok(QuantSpec::Pq { m, nbits: nbits as u8 }),
                _ => Err(bad()),
            }
        }
        _ => Err(bad()),
    }
}

impl FromStr for IndexSpec {
    type Err = Error;

    /// Parses `base[+codes]` (case-insensitive, surrounding spaces ignored).
    fn from_str(s: &str) -> Result<IndexSpec> {
        let lower = s.trim().to_ascii_lowercase();
        let (base, codes) = match lower.split_once('+') {
            Some((b, c)) => (b, Some(c)),
            None => (lower.as_str(), None),
        };
        let base = match base {
            "flat" => Base::Flat,
            "hnsw" => Base::Hnsw,
            "spann" => Base::Spann,
            other => {
                return Err(Error::InvalidArgument(format!(
                    "index spec {s:?}: unknown index {other:?}; use flat, hnsw or spann, each optionally +sq8, +sq4, +pq, +rabitq[B]"
                )))
            }
        };
        let codes = codes.map(parse_codes).transpose().map_err(|e| match e {
            Error::InvalidArgument(m) => Error::InvalidArgument(format!("index spec {s:?}: {m}")),
            e => e,
        })?;
        Ok(IndexSpec { base, codes })
    }
}

impl fmt::Display for IndexSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.base.name())?;
        match self.codes {
            None => Ok(()),
            Some(QuantSpec::Sq { bits }) => write!(f, "+sq{bits}"),
            Some(QuantSpec::RaBitQ { bits: 1 }) => f.write_str("+rabitq"),
            Some(QuantSpec::RaBitQ { bits }) => write!(f, "+rabitq{bits}"),
            Some(QuantSpec::Pq { m, nbits }) => {
                f.write_str("+pq")?;
                if m > 0 {
                    write!(f, "{m}")?;
                }
                match nbits {
                    8 => Ok(()),
                    b => write!(f, "x{b}"),
                }
            }
        }
    }
}
