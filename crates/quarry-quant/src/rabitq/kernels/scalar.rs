//! Portable reference kernels for RaBitQ codes: `<x_u, q>` over packed values (the slotted,
//! 1-bit stream and split layouts of `layout.rs`) and the bit-plane popcount product of 1-bit
//! codes.

/// `<x_u, q>` for the slotted layout, `B ∈ {2, 4, 8}`. Requires `q.len() >= packed.len()·8/B`.
pub(crate) fn dot_slots<const B: u32>(packed: &[u8], q: &[f32]) -> f32 {
    let slots = (8 / B) as usize;
    let per_group = 16 * slots;
    let mask = ((1u32 << B) - 1) as u8;
    let mut acc = [0.0f32; 16];
    for (group, qg) in packed.chunks_exact(16).zip(q.chunks_exact(per_group)) {
        for k in 0..slots {
            let shift = k as u32 * B;
            for (j, a) in acc.iter_mut().enumerate() {
                let v = (group[j] >> shift) & mask;
                *a += v as f32 * qg[16 * k + j];
            }
        }
    }
    acc.iter().sum()
}

/// `<x_u, q>` for the 1-bit stream layout (value `i` = bit `i mod 8` of byte `i / 8`).
/// Requires `q.len() >= 8·packed.len()`.
pub(crate) fn dot_bits(packed: &[u8], q: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    for (&byte, q8) in packed.iter().zip(q.chunks_exact(8)) {
        for (t, a) in acc.iter_mut().enumerate() {
            *a += ((byte >> t) & 1) as f32 * q8[t];
        }
    }
    acc.iter().sum()
}

composed_kernels!(dot_bits, dot_slots::<2>, dot_slots::<4>);

/// Bit-plane product of a 1-bit code with a 4-bit query: returns
/// `(<xb, qu>, popcount(xb))` where `<xb, qu> = Σ_j 2^j · popcount(xb AND plane_j)`.
///
/// `code` holds `W` little-endian 64-bit words (`8·W` bytes); `planes` is plane-major, `4·W`
/// words: plane `j` is `planes[j·W .. (j+1)·W]`.
#[inline(always)]
pub(crate) fn bitplanes(code: &[u8], planes: &[u64]) -> (u32, u32) {
    let words = code.len() / 8;
    let (p0, rest) = planes.split_at(words);
    let (p1, rest) = rest.split_at(words);
    let (p2, p3) = rest.split_at(words);
    let (mut ip, mut pc) = (0u32, 0u32);
    for (w, c) in code.chunks_exact(8).enumerate() {
        let x = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        pc += x.count_ones();
        ip += (x & p0[w]).count_ones()
            + 2 * (x & p1[w]).count_ones()
            + 4 * (x & p2[w]).count_ones()
            + 8 * (x & p3[w]).count_ones();
    }
    (ip, pc)
}

/// Checks a bit-plane product's shape: whole words and four planes of as many words.
pub(crate) fn check_planes(code: &[u8], planes: &[u64]) {
    assert!(
        code.len().is_multiple_of(8) && planes.len() >= 4 * (code.len() / 8),
        "a {}-byte 1-bit code needs 4 query planes of {} words",
        code.len(),
        code.len() / 8
    );
}
