//! Process-wide allocator tuning for a long-running store owner (the `serve` process).
//!
//! glibc gives every thread that allocates under contention its own arena (up to 8 × cores).
//! A sync commits its batches on tokio's blocking threads and parses answers on the workers,
//! so freed sled pages and XML trees end up spread over many arenas that never give memory
//! back: a 20,000-update sync peaked at 371 MB RSS with the default and 295 MB with
//! `MALLOC_ARENA_MAX=2` (same binary, same data). Two arenas keep allocation fast on the
//! few cores a branch server has.
//!
//! glibc also raises its mmap threshold each time a big mmapped block is freed (up to
//! 32 MiB), after which the 2 MB answers and the big lists of a sync are carved from the
//! arenas and their freed space is kept. A fixed threshold of [`MMAP_THRESHOLD`] keeps such
//! blocks mmapped (returned at free): a 100,000-update sync peaked at 168 MiB instead of
//! 212 MiB, at no measurable CPU cost. It is 1 MiB, not glibc's initial 128 KiB: the content
//! cache moves payloads in 256–512 KiB buffers, and mmapping each of them (a page fault and a
//! zeroed page per 4 KiB, then munmap) halved the throughput of a cold miss (1 GiB through a
//! 10 Gbit/s upstream: 3.2 s at 128 KiB, 1.7 s at 1 MiB).
//!
//! Fixing the mmap threshold also freezes glibc's trim threshold at 128 KiB: every free that
//! leaves more than that at the top of an arena hands the pages back, and the next network
//! buffer faults them in again (zeroed). On a cold miss that was 10 % of all CPU samples.
//! [`TRIM_THRESHOLD`] keeps up to 8 MiB per arena: 1 GiB cold miss 2.43 -> 2.21 CPU-s,
//! peak RSS 30.8 -> 33.4 MiB.

/// Arenas glibc may use when [`limit_malloc_arenas`] is called.
pub const MALLOC_ARENAS: i32 = 2;

/// Allocations at least this big are mmapped (fixed; see the module doc for why 1 MiB).
pub const MMAP_THRESHOLD: i32 = 1024 * 1024;

/// Free memory an arena keeps at its top before giving it back (see the module doc).
pub const TRIM_THRESHOLD: i32 = 8 * 1024 * 1024;

/// Caps glibc's malloc arenas at [`MALLOC_ARENAS`], fixes its mmap threshold at
/// [`MMAP_THRESHOLD`] and its trim threshold at `TRIM_THRESHOLD`, each unless the operator
/// already chose a value (`MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_`,
/// `MALLOC_TRIM_THRESHOLD_`). Call once at start-up, before other threads exist.
/// A no-op on other C libraries and platforms.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    for (env, param, value, name) in [
        (
            "MALLOC_ARENA_MAX",
            libc::M_ARENA_MAX,
            MALLOC_ARENAS,
            "M_ARENA_MAX",
        ),
        (
            "MALLOC_MMAP_THRESHOLD_",
            libc::M_MMAP_THRESHOLD,
            MMAP_THRESHOLD,
            "M_MMAP_THRESHOLD",
        ),
        (
            "MALLOC_TRIM_THRESHOLD_",
            libc::M_TRIM_THRESHOLD,
            TRIM_THRESHOLD,
            "M_TRIM_THRESHOLD",
        ),
    ] {
        if std::env::var_os(env).is_some() {
            continue;
        }
        // SAFETY: mallopt only changes allocator parameters; it is called before the process
        // starts other threads and takes no pointers.
        let ok = unsafe { libc::mallopt(param, value) };
        if ok != 1 {
            tracing::debug!(param = name, "mallopt refused");
        }
    }
}
