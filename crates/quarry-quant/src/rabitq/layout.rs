//! The packed layout of the `D` code values of `B` bits each (`D` a multiple of 64), and the
//! byte layout of a whole code.
//!
//! A code is `FACTOR_BYTES` bytes of per-vector factors (four little-endian f32: `|o_r − c|`,
//! the additive term, the rescale factor, the error factor; see [`Factors`]) followed by
//! `D·B/8` bytes of packed values:
//!
//! * `B ∈ {2, 4, 8}` — *slotted*: 16-byte groups of `128/B` values. Value `i` lives in group
//!   `g = i / (128/B)`; with `w = i mod (128/B)`, slot `k = w / 16` and byte `j = w mod 16`, it
//!   occupies bits `[k·B, (k+1)·B)` of byte `16·g + j`. So unpacking one group with a 16-lane
//!   byte-to-i32 widening and `8/B` shift-and-masks yields consecutive runs of 16 values, each
//!   matching 16 consecutive query floats (B = 8 is plain bytes; B = 4 puts value `32g + j` in the
//!   low nibble of byte `16g + j` and value `32g + 16 + j` in its high nibble).
//! * `B = 1` — *bit stream*: value `i` is bit `i mod 8` of byte `i / 8`, i.e. bit `i mod 64` of
//!   little-endian 64-bit word `i / 64` — the order the popcount kernels read, and 16 consecutive
//!   values form one AVX-512 lane mask.
//! * `B ∈ {3, 5, 6, 7}` — *split*: the value's bits are cut into parts of 4, 2 and 1 bits (the
//!   binary decomposition of `B`, low bits first: 3 = 2+1, 5 = 4+1, 6 = 4+2, 7 = 4+2+1), and each
//!   part is packed over all `D` values in its own layout above, one after the other. For odd `B`
//!   the last, 1-bit part holds the top (sign) bit.

/// Bytes of per-vector factors at the start of every code.
pub(crate) const FACTOR_BYTES: usize = 16;

/// Parts `(bits, shift)` of the split layout of `bits`, low bits first (one part for 1, 2, 4, 8).
pub(crate) fn parts(bits: u8) -> &'static [(u8, u32)] {
    match bits {
        3 => &[(2, 0), (1, 2)],
        5 => &[(4, 0), (1, 4)],
        6 => &[(4, 0), (2, 4)],
        7 => &[(4, 0), (2, 4), (1, 6)],
        1 => &[(1, 0)],
        2 => &[(2, 0)],
        4 => &[(4, 0)],
        _ => &[(8, 0)],
    }
}

/// Bytes of packed values for `dim` values (a multiple of 64) of `bits` bits.
pub(crate) fn packed_len(dim: usize, bits: u8) -> usize {
    dim * bits as usize / 8
}

/// Byte index and bit shift of value `i` in the slotted layout of `bits ∈ {2, 4, 8}`.
fn slot_position(bits: u8, i: usize) -> (usize, u32) {
    let per_group = 128 / bits as usize;
    let (g, w) = (i / per_group, i % per_group);
    (16 * g + w % 16, (w / 16) as u32 * bits as u32)
}

/// Packs one part of `part_bits ∈ {1, 2, 4, 8}`: bits `[shift, shift + part_bits)` of each value.
fn pack_part(part_bits: u8, shift: u32, values: &[u8], out: &mut [u8]) {
    let mask = ((1u32 << part_bits) - 1) as u8;
    for (i, &v) in values.iter().enumerate() {
        let v = (v >> shift) & mask;
        if part_bits == 1 {
            out[i / 8] |= v << (i % 8);
        } else {
            let (byte, s) = slot_position(part_bits, i);
            out[byte] |= v << s;
        }
    }
}

/// Packs `values` (each `< 2^bits`, length a multiple of 64) into `out` (length
/// `packed_len(values.len(), bits)`).
pub(crate) fn pack(bits: u8, values: &[u8], out: &mut [u8]) {
    debug_assert_eq!(out.len(), packed_len(values.len(), bits));
    out.fill(0);
    let mut offset = 0;
    for &(part_bits, shift) in parts(bits) {
        let len = packed_len(values.len(), part_bits);
        pack_part(part_bits, shift, values, &mut out[offset..offset + len]);
        offset += len;
    }
}

/// Inverse of [`pack`]: fills `out` (a multiple of 64 values) from `packed`.
pub(crate) fn unpack(bits: u8, packed: &[u8], out: &mut [u8]) {
    debug_assert_eq!(packed.len(), packed_len(out.len(), bits));
    out.fill(0);
    let mut offset = 0;
    for &(part_bits, shift) in parts(bits) {
        let mask = ((1u32 << part_bits) - 1) as u8;
        for (i, o) in out.iter_mut().enumerate() {
            let v = if part_bits == 1 {
                (packed[offset + i / 8] >> (i % 8)) & 1
            } else {
                let (byte, s) = slot_position(part_bits, i);
                (packed[offset + byte] >> s) & mask
            };
            *o |= v << shift;
        }
        offset += packed_len(out.len(), part_bits);
    }
}

/// The per-vector factors stored at the start of a code.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Factors {
    /// `|o_r − c|`.
    pub norm: f32,
    /// Exact additive term: `|o_r − c|²` under L2, `<o_r − c, c>` under inner product.
    pub add: f32,
    /// `|o_r − c| / <y, o'>` with `y = x_u + c_B` the grid vector and `o'` the rotated unit residual.
    pub rescale: f32,
    /// `|o_r − c| · sqrt(1 − a²)/a / sqrt(D − 1)` with `a = <o_bar, o>`; times `eps0·|q_r − c|`
    /// it bounds the error of the estimated `<o_r − c, q_r − c>`.
    pub err: f32,
}

impl Factors {
    /// Reads the factors from the first [`FACTOR_BYTES`] of `code`.
    #[inline]
    pub fn read(code: &[u8]) -> Factors {
        let f = |o: usize| f32::from_le_bytes([code[o], code[o + 1], code[o + 2], code[o + 3]]);
        Factors { norm: f(0), add: f(4), rescale: f(8), err: f(12) }
    }

    /// Writes the factors into the first [`FACTOR_BYTES`] of `code`.
    pub fn write(&self, code: &mut [u8]) {
        for (o, v) in [self.norm, self.add, self.rescale, self.err].into_iter().enumerate() {
            code[4 * o..4 * o + 4].copy_from_slice(&v.to_le_bytes());
        }
    }
}
