//! The `stack` binary: `stack run <distribution-or-config> [--port N] [--host H]`.
//! Built with `--features replay`, it can record and replay provider traffic.

fn main() -> std::process::ExitCode {
    stack::cli::main()
}
