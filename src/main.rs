//! The `stack` binary: `stack run <distribution-or-config> [--port N] [--host H]`.
//! Built with `--features replay`, it can record and replay provider traffic.

/// mimalloc: the server allocates for every request (JSON values, headers, spans); glibc's
/// malloc and free were a quarter of a replayed request's instructions.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    stack::cli::main()
}
