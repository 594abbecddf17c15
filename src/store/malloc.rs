//! Process-wide allocator tuning for a long-running store owner (the `serve` process).
//!
//! glibc gives every thread that allocates under contention its own arena (up to 8 × cores).
//! A sync commits its batches on tokio's blocking threads and parses answers on the workers,
//! so freed sled pages and XML trees end up spread over many arenas that never give memory
//! back: a 20,000-update sync peaked at 371 MB RSS with the default and 295 MB with
//! `MALLOC_ARENA_MAX=2` (same binary, same data). Two arenas keep allocation fast on the
//! few cores a branch server has.

/// Arenas glibc may use when [`limit_malloc_arenas`] is called.
pub const MALLOC_ARENAS: i32 = 2;

/// Caps glibc's malloc arenas at [`MALLOC_ARENAS`], unless the operator already chose a
/// value with `MALLOC_ARENA_MAX`. Call once at start-up, before other threads exist.
/// A no-op on other C libraries and platforms.
pub fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; it is called before the process
        // starts other threads and takes no pointers.
        let ok = unsafe { libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS) };
        if ok != 1 {
            tracing::debug!("mallopt(M_ARENA_MAX) refused");
        }
    }
}
