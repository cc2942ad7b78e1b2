//! The reference cloud: `cargo run --example full_cluster`.
//!
//! The builder chain lives in `src/reference.rs` (so tests build the same
//! cloud on test addresses); this prints what it describes.

use std::process::ExitCode;

fn main() -> ExitCode {
    match flatcar_microcloud::reference::cluster() {
        Ok(cluster) => {
            print!("{}", cluster.summary());
            ExitCode::SUCCESS
        }
        Err(problems) => {
            eprint!("{problems}");
            ExitCode::FAILURE
        }
    }
}
