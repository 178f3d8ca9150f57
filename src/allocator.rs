//! How the process's allocator is tuned for the pixel models' large buffers.
//! Called first thing by the binary and by the benchmark examples, so that
//! their timings are the binary's.

/// Keeps the memory the process frees for its next file instead of handing
/// it back to the kernel. The pixel models' buffers are tens to hundreds of
/// MB (the text detector on a 1955x1841 radiograph touches about 1 GB).
/// glibc mmaps fresh pages for anything over its mmap threshold, gives each
/// thread an arena of 64 MB heaps that mmap anything larger, and trims the
/// heap top on free: every file faulted its buffers in and zeroed them again
/// (10 radiographs with the text route: 11 s of system time in a 14 s run).
/// One arena grown from the heap in 1 GB steps and never trimmed reuses the
/// same pages (1.4 s of system time, 8.2 s). Small allocations stay in each
/// thread's cache, so the single arena is rarely contended. Peak memory is
/// what it was; it is simply not returned. `DEIDGATE_KEEP_FREED_MEMORY=0`
/// leaves glibc's defaults.
pub fn keep_freed_memory() {
    if std::env::var_os("DEIDGATE_KEEP_FREED_MEMORY").is_some_and(|v| v == "0") {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; callers run it before any
    // thread starts (`main` of the binary and of the benchmark examples).
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TOP_PAD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}
