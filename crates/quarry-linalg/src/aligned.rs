//! `AlignedVec`: a growable buffer of plain numbers whose start is 64-byte aligned.
//!
//! SIMD scans read rows with full-width loads; a row that starts on a cache-line boundary never
//! splits a load across two lines. Large buffers are also advised to use transparent huge pages
//! on Linux, which cuts TLB misses during a full scan.

use bytemuck::{Pod, Zeroable};

/// One cache line of raw bytes; the unit of allocation.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

// SAFETY: `Line` is 64 bytes of `u8` with alignment 64: no padding, every bit pattern valid.
unsafe impl Zeroable for Line {}
// SAFETY: as above; `Line` is `Copy` and `repr(C)`.
unsafe impl Pod for Line {}

const LINE: usize = std::mem::size_of::<Line>();
const HUGE: usize = 2 << 20;

/// A 64-byte aligned vector of `T` (f32, u16, ...), zero-initialised on growth.
#[derive(Clone)]
pub struct AlignedVec<T: Pod> {
    lines: Vec<Line>,
    len: usize,
    _t: std::marker::PhantomData<T>,
}

impl<T: Pod> Default for AlignedVec<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Pod> std::fmt::Debug for AlignedVec<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignedVec").field("len", &self.len).finish()
    }
}

impl<T: Pod> AlignedVec<T> {
    /// An empty buffer.
    pub fn new() -> Self {
        AlignedVec { lines: Vec::new(), len: 0, _t: std::marker::PhantomData }
    }

    /// A buffer of `len` zeroed elements.
    pub fn zeroed(len: usize) -> Self {
        let mut v = Self::new();
        v.resize_zeroed(len);
        v
    }

    /// Copies `src` into a new aligned buffer.
    pub fn from_slice(src: &[T]) -> Self {
        let mut v = Self::zeroed(src.len());
        v.as_mut_slice().copy_from_slice(src);
        v
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes allocated.
    pub fn capacity_bytes(&self) -> usize {
        self.lines.capacity() * LINE
    }

    /// Grows (zero-filling) or shrinks to `len` elements.
    pub fn resize_zeroed(&mut self, len: usize) {
        let bytes = len * std::mem::size_of::<T>();
        let lines = bytes.div_ceil(LINE);
        if lines > self.lines.capacity() {
            let mut fresh: Vec<Line> = Vec::with_capacity(lines.max(self.lines.len() * 3 / 2));
            advise_huge(fresh.as_mut_ptr() as *mut u8, fresh.capacity() * LINE);
            fresh.extend_from_slice(&self.lines);
            self.lines = fresh;
        }
        self.lines.resize(lines, Line([0; 64]));
        if len < self.len {
            // Keep the invariant that bytes past `len` inside the last line are zero.
            let start = len * std::mem::size_of::<T>();
            bytemuck::cast_slice_mut::<Line, u8>(&mut self.lines)[start..].fill(0);
        }
        self.len = len;
    }

    /// Appends `src` at the end.
    pub fn extend_from_slice(&mut self, src: &[T]) {
        let old = self.len;
        self.resize_zeroed(old + src.len());
        self.as_mut_slice()[old..].copy_from_slice(src);
    }

    /// The elements.
    pub fn as_slice(&self) -> &[T] {
        let bytes: &[u8] = bytemuck::cast_slice(&self.lines);
        &bytemuck::cast_slice(bytes)[..self.len]
    }

    /// The elements, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        let len = self.len;
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut self.lines);
        &mut bytemuck::cast_slice_mut(bytes)[..len]
    }
}

/// Asks the kernel to back the 2 MiB-aligned interior of `[ptr, ptr+bytes)` with huge pages.
#[cfg(target_os = "linux")]
fn advise_huge(ptr: *mut u8, bytes: usize) {
    let start = (ptr as usize).next_multiple_of(HUGE);
    let end = (ptr as usize + bytes) / HUGE * HUGE;
    if end > start {
        // SAFETY: the range lies inside an allocation we own; MADV_HUGEPAGE only changes paging
        // policy and never the contents. Failure (e.g. THP disabled) is harmless and ignored.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge(_ptr: *mut u8, _bytes: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_and_zeroed() {
        let mut v: AlignedVec<f32> = AlignedVec::zeroed(5);
        assert_eq!(v.as_slice(), &[0.0; 5]);
        assert_eq!(v.as_slice().as_ptr() as usize % 64, 0);
        v.extend_from_slice(&[1.0, 2.0]);
        assert_eq!(v.len(), 7);
        assert_eq!(&v.as_slice()[5..], &[1.0, 2.0]);
        v.resize_zeroed(6);
        v.resize_zeroed(7);
        assert_eq!(v.as_slice()[6], 0.0);
        let big: AlignedVec<u16> = AlignedVec::from_slice(&vec![7u16; 3 << 20]);
        assert_eq!(big.as_slice().as_ptr() as usize % 64, 0);
        assert!(big.as_slice().iter().all(|&x| x == 7));
    }
}
