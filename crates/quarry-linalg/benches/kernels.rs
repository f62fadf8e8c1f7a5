//! Kernel benchmark: one thread, a 384-d query against 1M stored vectors (1.5 GB of f32), the
//! shape of an exact scan. Prints ns per vector and GB/s for every kernel level, the naive loop,
//! simsimd (with `--features simsimd`), f16 storage, and the machine's single-core read bandwidth.
//!
//! Run: `cargo bench -p quarry-linalg --bench kernels [--features simsimd] -- [N] [DIM]`

use half::f16;
use quarry_linalg::kernels::{Isa, Kernels};
use quarry_linalg::AlignedVec;
use std::hint::black_box;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs `f` (one pass over all rows) 5 times; returns median seconds.
fn time(mut f: impl FnMut() -> f32) -> f64 {
    black_box(f());
    median(
        (0..5)
            .map(|_| {
                let t = Instant::now();
                black_box(f());
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn report(name: &str, secs: f64, n: usize, bytes: usize) {
    println!("| {name:<34} | {:>8.1} | {:>6.2} |", secs * 1e9 / n as f64, bytes as f64 / secs / 1e9);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let n: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let dim: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(384);
    let mut x = 0x9E3779B97F4A7C15u64;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let mut base = AlignedVec::<f32>::zeroed(n * dim);
    base.as_mut_slice().iter_mut().for_each(|v| *v = rnd());
    let q_unaligned: Vec<f32> = (0..dim).map(|_| rnd()).collect();
    let q_aligned = AlignedVec::from_slice(&q_unaligned);
    let q = q_aligned.as_slice();
    let bytes = n * dim * 4;
    let rows = base.as_slice();
    let mut out = vec![0.0f32; n];
    println!("# {n} x {dim}-d, one thread, {:.2} GB f32 ({})", bytes as f64 / 1e9, std::env::consts::ARCH);
    println!("| kernel                             | ns/vec   | GB/s   |");
    println!("|------------------------------------|----------|--------|");

    // Single-core read bandwidth: sum the buffer as u64 words (vectorised by the compiler, 8 chains).
    let words: &[u64] = bytemuck::cast_slice(rows);
    let t = time(|| {
        let mut acc = [0u64; 8];
        for c in words.chunks_exact(8) {
            for j in 0..8 {
                acc[j] = acc[j].wrapping_add(c[j]);
            }
        }
        acc.iter().fold(0u64, |a, b| a.wrapping_add(*b)) as f32
    });
    report("memory read (u64 sum, bandwidth)", t, n, bytes);

    let t = time(|| rows.chunks_exact(dim).map(|r| q.iter().zip(r).map(|(a, b)| a * b).sum::<f32>()).sum());
    report("naive iter().zip().sum()", t, n, bytes);

    for isa in Isa::ALL.into_iter().rev() {
        let Some(k) = Kernels::for_isa(isa) else { continue };
        let t = time(|| {
            (k.dot_many)(q, rows, &mut out);
            out[n - 1]
        });
        report(&format!("quarry {} dot_many", isa.name()), t, n, bytes);
        let t = time(|| rows.chunks_exact(dim).map(|r| (k.dot)(q, r)).sum());
        report(&format!("quarry {} dot per call", isa.name()), t, n, bytes);
        let t = time(|| {
            (k.dot_many)(&q_unaligned, rows, &mut out);
            out[n - 1]
        });
        report(&format!("quarry {} dot_many, unaligned query", isa.name()), t, n, bytes);
    }

    #[cfg(feature = "simsimd")]
    {
        use simsimd::SpatialSimilarity;
        let t = time(|| rows.chunks_exact(dim).map(|r| f32::dot(q, r).unwrap_or(0.0) as f32).sum());
        report("simsimd 6 f32::dot per call", t, n, bytes);
    }

    let half_rows: Vec<f16> = rows.iter().map(|&v| f16::from_f32(v)).collect();
    let half_rows = AlignedVec::from_slice(&half_rows);
    for isa in Isa::ALL.into_iter().rev() {
        let Some(k) = Kernels::for_isa(isa) else { continue };
        let t = time(|| {
            (k.dot_many_f16)(q, half_rows.as_slice(), &mut out);
            out[n - 1]
        });
        report(&format!("quarry {} dot_many_f16", isa.name()), t, n, bytes / 2);
    }
}
