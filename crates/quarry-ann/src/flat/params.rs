//! Build parameters of the flat index.

use quarry_core::{Error, Result};
use std::str::FromStr;

/// How stored vectors are held in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Storage {
    /// 32-bit floats: exact for any input.
    #[default]
    F32,
    /// IEEE half floats, widened to f32 in the kernel. Lossless when the input already is f16
    /// (e.g. an f16 `.npy`) and the metric does not normalise; halves memory and scan traffic.
    F16,
}

impl FromStr for Storage {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" => Ok(Storage::F32),
            "f16" | "float16" | "half" => Ok(Storage::F16),
            other => Err(Error::InvalidArgument(format!("unknown storage {other:?}: expected f32 or f16"))),
        }
    }
}

impl Storage {
    /// Bytes per stored component.
    pub fn bytes_per_component(self) -> usize {
        match self {
            Storage::F32 => 4,
            Storage::F16 => 2,
        }
    }

    /// Short name (`f32`, `f16`).
    pub fn name(self) -> &'static str {
        match self {
            Storage::F32 => "f32",
            Storage::F16 => "f16",
        }
    }
}

/// Parameters of a [`super::FlatIndex`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlatParams {
    /// Element type of the stored vectors.
    pub storage: Storage,
}
