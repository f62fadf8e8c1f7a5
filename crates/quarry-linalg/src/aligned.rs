//! `AlignedVec`: a buffer of plain numbers whose start is 64-byte aligned, held on the heap or
//! in a copy-on-write memory map of a file.
//!
//! SIMD scans read rows with full-width loads; a row that starts on a cache-line boundary never
//! splits a load across two lines. Large heap buffers are advised to use transparent huge pages
//! on Linux, which cuts TLB misses during a full scan. A mapped buffer (an index opened from disk)
//! pages its data in on first touch and is never written back to the file: a write copies the
//! page privately, and growing the buffer moves it to the heap.

use bytemuck::{Pod, Zeroable};

/// One cache line of raw bytes; the unit of heap allocation.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

// SAFETY: `Line` is 64 bytes of `u8` with alignment 64: no padding, every bit pattern valid.
unsafe impl Zeroable for Line {}
// SAFETY: as above; `Line` is `Copy` and `repr(C)`.
unsafe impl Pod for Line {}

const LINE: usize = std::mem::size_of::<Line>();
const HUGE: usize = 2 << 20;

enum Backing {
    Heap(Vec<Line>),
    Map(memmap2::MmapMut),
}

/// A 64-byte aligned vector of `T` (f32, u16, ...), zero-initialised on growth.
pub struct AlignedVec<T: Pod> {
    backing: Backing,
    len: usize,
    _t: std::marker::PhantomData<T>,
}

impl<T: Pod> Default for AlignedVec<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Pod> Clone for AlignedVec<T> {
    fn clone(&self) -> Self {
        Self::from_slice(self.as_slice())
    }
}

impl<T: Pod> std::fmt::Debug for AlignedVec<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignedVec").field("len", &self.len).field("mapped", &self.is_mapped()).finish()
    }
}

impl<T: Pod> AlignedVec<T> {
    /// An empty buffer.
    pub fn new() -> Self {
        AlignedVec { backing: Backing::Heap(Vec::new()), len: 0, _t: std::marker::PhantomData }
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

    /// Serves `len` elements from a copy-on-write file mapping. Errors if the mapping is not
    /// 64-byte aligned or is too short.
    pub fn from_mmap(map: memmap2::MmapMut, len: usize) -> Result<Self, String> {
        let bytes = len.checked_mul(std::mem::size_of::<T>()).ok_or("length overflows")?;
        if map.len() < bytes {
            return Err(format!("mapping holds {} bytes, {bytes} needed", map.len()));
        }
        if !(map.as_ptr() as usize).is_multiple_of(64) {
            return Err("mapping is not 64-byte aligned".into());
        }
        Ok(AlignedVec { backing: Backing::Map(map), len, _t: std::marker::PhantomData })
    }

    /// Whether the data is served from a file mapping.
    pub fn is_mapped(&self) -> bool {
        matches!(self.backing, Backing::Map(_))
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes held: heap capacity, or the mapped length.
    pub fn capacity_bytes(&self) -> usize {
        match &self.backing {
            Backing::Heap(lines) => lines.capacity() * LINE,
            Backing::Map(m) => m.len(),
        }
    }

    /// Moves mapped data to the heap (before growing).
    fn move_to_heap(&mut self) {
        if self.is_mapped() {
            let lines = (self.len * std::mem::size_of::<T>()).div_ceil(LINE);
            let mut heap: Vec<Line> = Vec::with_capacity(lines);
            advise_huge(heap.as_mut_ptr() as *mut u8, heap.capacity() * LINE);
            heap.resize(lines, Line([0; 64]));
            let src: &[u8] = bytemuck::cast_slice(self.as_slice());
            bytemuck::cast_slice_mut::<Line, u8>(&mut heap)[..src.len()].copy_from_slice(src);
            self.backing = Backing::Heap(heap);
        }
    }

    /// Grows (zero-filling) or shrinks to `len` elements.
    pub fn resize_zeroed(&mut self, len: usize) {
        self.move_to_heap();
        let Backing::Heap(lines_vec) = &mut self.backing else { return };
        let bytes = len * std::mem::size_of::<T>();
        let lines = bytes.div_ceil(LINE);
        if lines > lines_vec.capacity() {
            let mut fresh: Vec<Line> = Vec::with_capacity(lines.max(lines_vec.len() * 3 / 2));
            advise_huge(fresh.as_mut_ptr() as *mut u8, fresh.capacity() * LINE);
            fresh.extend_from_slice(lines_vec);
            *lines_vec = fresh;
        }
        lines_vec.resize(lines, Line([0; 64]));
        if len < self.len {
            // Keep the invariant that bytes past `len` inside the last line are zero.
            let start = len * std::mem::size_of::<T>();
            bytemuck::cast_slice_mut::<Line, u8>(lines_vec)[start..].fill(0);
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
        let bytes: &[u8] = match &self.backing {
            Backing::Heap(lines) => bytemuck::cast_slice(lines),
            Backing::Map(m) => m,
        };
        &bytemuck::cast_slice(&bytes[..self.len * std::mem::size_of::<T>()])[..self.len]
    }

    /// The elements, mutable (a mapped buffer copies touched pages privately).
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        let len = self.len;
        let bytes: &mut [u8] = match &mut self.backing {
            Backing::Heap(lines) => bytemuck::cast_slice_mut(lines),
            Backing::Map(m) => m,
        };
        &mut bytemuck::cast_slice_mut(&mut bytes[..len * std::mem::size_of::<T>()])[..len]
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

    #[test]
    fn mapped_buffers_read_copy_on_write_and_grow_onto_the_heap() {
        let path = std::env::temp_dir().join(format!("quarry-aligned-{}", std::process::id()));
        let values: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        std::fs::write(&path, bytemuck::cast_slice::<f32, u8>(&values)).expect("write");
        let file = std::fs::File::open(&path).expect("open");
        // SAFETY (test): the file is private to this test and not modified while mapped.
        let map = unsafe { memmap2::MmapOptions::new().map_copy(&file) }.expect("map");
        let mut v: AlignedVec<f32> = AlignedVec::from_mmap(map, 1000).expect("aligned");
        assert!(v.is_mapped());
        assert_eq!(v.as_slice(), &values[..]);
        v.as_mut_slice()[3] = -1.0;
        assert_eq!(std::fs::read(&path).expect("read")[12..16], 3.0f32.to_le_bytes(), "file untouched");
        v.extend_from_slice(&[5.0]);
        assert!(!v.is_mapped());
        assert_eq!((v.as_slice()[3], v.as_slice()[1000], v.len()), (-1.0, 5.0, 1001));
        let _ = std::fs::remove_file(&path);
    }
}
