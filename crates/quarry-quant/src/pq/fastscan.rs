//! Fast-scan over 4-bit PQ codes (André, Kermarrec & Le Scouarnec, "Accelerated Nearest Neighbor
//! Search with Quick ADC", ICMR 2017, arXiv 1704.07355: 16-entry tables quantized to u8 and looked
//! up with a byte shuffle; layout as in faiss `IndexPQFastScan`): the blocked code
//! layout [`FastScanCodes`], the u8 tables [`QuantizedLut`], the run-time selected scan kernels
//! ([`ScanKernel`]) and [`top_candidates`].
//!
//! **Block layout.** Vectors are grouped in blocks of 32 (the last block is padded with code 0
//! and its padding sums are never reported). A block holds `pairs = ceil(m / 2)` runs of 32
//! bytes, one per pair of subspaces `(2p, 2p + 1)` (an odd `m` gets a padding subspace of code 0
//! with a zero table). Within pair `p`'s 32 bytes, for `i` in `0..16`:
//!
//! * byte `i`: low nibble = code of subspace `2p` of vector `i`, high nibble = code of subspace
//!   `2p` of vector `16 + i`;
//! * byte `16 + i`: the same for subspace `2p + 1`.
//!
//! So one 256-bit load holds the codes of all 32 vectors for the pair, the 128-bit lane `L`
//! holding subspace `2p + L` — matching [`QuantizedLut::table`], whose pair `p` is
//! `[table of 2p | table of 2p + 1]`, so `vpshufb` looks up both subspaces at once.
//!
//! The scan produces one u16 per vector, the sum of its quantized table entries; the caller maps
//! it back with [`QuantizedLut::key`] (within `m * step / 2` of the float ADC key) and re-ranks
//! the best candidates exactly.

mod kernels;
mod lut;

pub use lut::QuantizedLut;

use super::product::PqQuantizer;
use crate::Quantizer;
use quarry_core::{DocId, Error, Result};
use quarry_linalg::AlignedVec;
use std::sync::OnceLock;

/// Vectors per block.
pub const BLOCK: usize = 32;

/// Blocks scanned per step of [`top_candidates`] (2,048 vectors: the sums stay in L1).
const STRIPE_BLOCKS: usize = 64;

/// A fast-scan kernel level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScanKernel {
    /// Portable reference.
    Scalar,
    /// x86-64 AVX2 (`vpshufb` on 256-bit registers).
    Avx2,
    /// x86-64 AVX-512BW (two pairs of subspaces per 512-bit step).
    Avx512,
}

type KernelFn = fn(&[u8], usize, &[u8], &mut [u16]);

impl ScanKernel {
    /// Every level, in order of preference.
    /// AVX2 comes first: on Zen 4 the AVX-512BW kernel measured the same speed (both 0.134 ms
    /// for 100k codes at m = 96), and AVX2 avoids AVX-512 clock penalties on other CPUs;
    /// `QUARRY_ISA=avx512` selects it.
    pub const ALL: [ScanKernel; 3] = [ScanKernel::Avx2, ScanKernel::Avx512, ScanKernel::Scalar];

    /// Lower-case name (`scalar`, `avx2`, `avx512`), as accepted by `QUARRY_ISA`.
    pub fn name(self) -> &'static str {
        match self {
            ScanKernel::Scalar => "scalar",
            ScanKernel::Avx2 => "avx2",
            ScanKernel::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can run the level.
    pub fn is_supported(self) -> bool {
        match self {
            ScanKernel::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            ScanKernel::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            ScanKernel::Avx512 => kernels::avx512::supported(),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The level in use: `QUARRY_ISA` if it names a supported level, else the first supported
    /// of [`ScanKernel::ALL`].
    pub fn best() -> ScanKernel {
        static BEST: OnceLock<ScanKernel> = OnceLock::new();
        *BEST.get_or_init(|| {
            quarry_linalg::kernels::choose_level(
                &ScanKernel::ALL,
                ScanKernel::name,
                ScanKernel::is_supported,
                ScanKernel::Scalar,
            )
        })
    }

    fn function(self) -> KernelFn {
        match self {
            #[cfg(target_arch = "x86_64")]
            ScanKernel::Avx2 => kernels::avx2::scan,
            #[cfg(target_arch = "x86_64")]
            ScanKernel::Avx512 => kernels::avx512::scan,
            _ => kernels::scan_scalar,
        }
    }
}

/// 4-bit PQ codes of `len` vectors in the fast-scan block layout (see the module docs).
#[derive(Debug, Clone)]
pub struct FastScanCodes {
    len: usize,
    m: usize,
    pairs: usize,
    data: AlignedVec<u8>,
}

impl FastScanCodes {
    /// Re-lays a 4-bit code arena (`n x ceil(m / 2)` bytes, subspace `2t` in the low nibble of
    /// byte `t`, as [`PqQuantizer`] encodes) into blocks. Errors if `m == 0`, `m > 65535` or the
    /// arena length is not a multiple of the code length.
    pub fn new(codes: &[u8], m: usize) -> Result<Self> {
        if m == 0 || m > 65_535 {
            return Err(Error::InvalidArgument(format!("fast-scan: m must be in 1..=65535, got {m}")));
        }
        let code_len = m.div_ceil(2);
        if !codes.len().is_multiple_of(code_len) {
            return Err(Error::InvalidArgument(format!(
                "fast-scan: {} code bytes are not a multiple of the code length {code_len} (m = {m})",
                codes.len()
            )));
        }
        let len = codes.len() / code_len;
        let pairs = code_len;
        let block_bytes = pairs * 32;
        let mut data = AlignedVec::<u8>::zeroed(len.div_ceil(BLOCK) * block_bytes);
        let out = data.as_mut_slice();
        for (v, code) in codes.chunks_exact(code_len).enumerate() {
            let block = &mut out[(v / BLOCK) * block_bytes..][..block_bytes];
            let (i, shift) = (v % 16, 4 * ((v % BLOCK) / 16));
            for (p, &byte) in code.iter().enumerate() {
                let c0 = byte & 0x0F;
                // The high nibble of an odd m's last byte is the padding subspace: code 0.
                let c1 = if 2 * p + 1 < m { byte >> 4 } else { 0 };
                block[p * 32 + i] |= c0 << shift;
                block[p * 32 + 16 + i] |= c1 << shift;
            }
        }
        Ok(FastScanCodes { len, m, pairs, data })
    }

    /// [`FastScanCodes::new`] for an arena encoded by `pq`, which must be 4-bit.
    pub fn from_pq(pq: &PqQuantizer, codes: &[u8]) -> Result<Self> {
        if pq.nbits() != 4 {
            return Err(Error::InvalidArgument(format!(
                "fast-scan needs 4-bit PQ codes, the quantizer is {}-bit",
                pq.nbits()
            )));
        }
        if !codes.len().is_multiple_of(pq.code_len()) {
            return Err(Error::InvalidArgument(format!(
                "fast-scan: {} code bytes are not a multiple of the code length {}",
                codes.len(),
                pq.code_len()
            )));
        }
        Self::new(codes, pq.m())
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are no vectors.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of subspaces.
    pub fn m(&self) -> usize {
        self.m
    }

    /// The blocked bytes (`ceil(len / 32) x ceil(m / 2) x 32`).
    pub fn as_bytes(&self) -> &[u8] {
        self.data.as_slice()
    }

    /// Quantized sums of every vector into `out` (length `len`), with [`ScanKernel::best`].
    ///
    /// # Panics
    /// If `lut.m() != self.m()` or `out.len() != self.len()`.
    pub fn scan(&self, lut: &QuantizedLut, out: &mut [u16]) {
        self.scan_impl(ScanKernel::best().function(), lut, out);
    }

    /// [`FastScanCodes::scan`] with a chosen kernel; errors if this CPU cannot run it.
    ///
    /// # Panics
    /// As [`FastScanCodes::scan`].
    pub fn scan_with(&self, kernel: ScanKernel, lut: &QuantizedLut, out: &mut [u16]) -> Result<()> {
        if !kernel.is_supported() {
            return Err(Error::InvalidArgument(format!(
                "fast-scan kernel {} is not supported on this CPU",
                kernel.name()
            )));
        }
        self.scan_impl(kernel.function(), lut, out);
        Ok(())
    }

    fn check_lut(&self, lut: &QuantizedLut) {
        assert_eq!(lut.m(), self.m, "fast-scan: table has m = {}, codes have m = {}", lut.m(), self.m);
    }

    fn scan_impl(&self, f: KernelFn, lut: &QuantizedLut, out: &mut [u16]) {
        self.check_lut(lut);
        assert_eq!(out.len(), self.len, "fast-scan: out must hold one sum per vector");
        let full = self.len / BLOCK;
        let block_bytes = self.pairs * 32;
        let data = self.data.as_slice();
        f(&data[..full * block_bytes], self.pairs, lut.table(), &mut out[..full * BLOCK]);
        if full * BLOCK < self.len {
            let mut tail = [0u16; BLOCK];
            f(&data[full * block_bytes..], self.pairs, lut.table(), &mut tail);
            out[full * BLOCK..].copy_from_slice(&tail[..self.len - full * BLOCK]);
        }
    }
}

/// The `n` best vectors by approximate key, best first: `(approximate key, id)` with ties by id
/// (ids are positions in the arena). Scans stripe by stripe with [`ScanKernel::best`] and keeps a
/// reservoir of candidates below the running threshold, cut back to the best `n` whenever it
/// fills (faiss's `ReservoirTopN`); re-rank the result with float ADC or exact distances.
///
/// # Panics
/// If `lut.m() != codes.m()`.
pub fn top_candidates(codes: &FastScanCodes, lut: &QuantizedLut, n: usize) -> Vec<(f32, DocId)> {
    top_candidates_with(codes, lut, n, ScanKernel::best())
}

/// [`top_candidates`] with a chosen kernel (an unsupported one falls back to scalar).
pub fn top_candidates_with(
    codes: &FastScanCodes,
    lut: &QuantizedLut,
    n: usize,
    kernel: ScanKernel,
) -> Vec<(f32, DocId)> {
    codes.check_lut(lut);
    let f = if kernel.is_supported() { kernel.function() } else { kernels::scan_scalar };
    let n = n.min(codes.len);
    if n == 0 {
        return Vec::new();
    }
    let block_bytes = codes.pairs * 32;
    let data = codes.data.as_slice();
    let mut sums = vec![0u16; STRIPE_BLOCKS * BLOCK];
    let mut reservoir = Reservoir::new(n);
    let nblocks = codes.len.div_ceil(BLOCK);
    let mut b0 = 0;
    while b0 < nblocks {
        let nb = STRIPE_BLOCKS.min(nblocks - b0);
        let stripe = &mut sums[..nb * BLOCK];
        f(&data[b0 * block_bytes..(b0 + nb) * block_bytes], codes.pairs, lut.table(), stripe);
        let first = b0 * BLOCK;
        let valid = (codes.len - first).min(nb * BLOCK);
        let (chunks, rest) = stripe[..valid].as_chunks::<32>();
        for (c, chunk) in chunks.iter().enumerate() {
            // Cheap (vectorised) rejection of a whole block at a time.
            let lo = chunk.iter().fold(u16::MAX, |a, &b| a.min(b));
            if (lo as u32) < reservoir.threshold {
                for (i, &s) in chunk.iter().enumerate() {
                    reservoir.offer(s, (first + 32 * c + i) as DocId);
                }
            }
        }
        let rest_first = first + 32 * chunks.len();
        for (i, &s) in rest.iter().enumerate() {
            reservoir.offer(s, (rest_first + i) as DocId);
        }
        b0 += nb;
    }
    reservoir.into_sorted().into_iter().map(|(s, id)| (lut.key(s), id)).collect()
}

/// Bounded selection of the `n` smallest `(sum, id)` for ids offered in increasing order.
struct Reservoir {
    n: usize,
    /// Size at which the reservoir is cut back to `n`.
    cap: usize,
    items: Vec<(u16, DocId)>,
    /// A candidate enters only if its sum is strictly below this (ids only grow, so an equal
    /// sum would lose the tie); `u32::MAX` until `n` candidates are kept.
    threshold: u32,
}

impl Reservoir {
    fn new(n: usize) -> Self {
        let cap = 2 * n.max(16);
        Reservoir { n, cap, items: Vec::with_capacity(cap), threshold: u32::MAX }
    }

    #[inline]
    fn offer(&mut self, sum: u16, id: DocId) {
        if (sum as u32) < self.threshold {
            self.items.push((sum, id));
            if self.items.len() == self.cap {
                self.shrink();
            }
        }
    }

    /// Keeps the best `n`; the worst of them becomes the threshold.
    fn shrink(&mut self) {
        if self.items.len() > self.n {
            self.items.select_nth_unstable(self.n - 1);
            self.items.truncate(self.n);
        }
        if self.items.len() == self.n {
            self.threshold = self.items.iter().map(|&(s, _)| s as u32).max().unwrap_or(u32::MAX);
        }
    }

    fn into_sorted(mut self) -> Vec<(u16, DocId)> {
        self.items.sort_unstable();
        self.items.truncate(self.n);
        self.items
    }
}
