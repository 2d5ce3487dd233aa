//! `recordings`: inspect and maintain a recordings directory (placeholder until the CLI lands).
fn main() {
    eprintln!("recordings: not yet implemented");
    std::process::exit(2);
}
