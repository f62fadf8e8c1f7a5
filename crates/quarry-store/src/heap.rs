//! Returning freed heap memory to the OS. Opening a collection reads files into buffers and
//! builds temporary lists that are freed again; glibc keeps such freed pages in the process
//! (they still count against a memory cgroup) unless asked to release them.

/// Releases the process's free heap pages to the OS (`malloc_trim(0)` under glibc; nothing
/// elsewhere). Cheap enough to call once after a bulk load; never needed for correctness.
pub fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}
