//! The `tokenwarden` binary: argument parsing lives in the library (`tokenwarden::cli`) so tests
//! can drive every command without a process.

/// mimalloc instead of glibc's malloc: under load the request path allocates on the runtime's
/// workers and frees on the SQLite writer thread (and the other way round), and glibc's per-arena
/// bookkeeping for that (`malloc_consolidate`, `unlink_chunk`) was ≈ a fifth of the workers' CPU
/// in the issuance profile (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tokenwarden::cli::main()
}
