//! The reference cloud: `cargo run --example full_cluster [-- --out DIR]`.
//!
//! Builds the cloud of the design from one builder chain (in
//! `src/reference.rs`, so tests build the same cloud on test addresses),
//! prints it, shows the plan against the bundle directory and writes every
//! artifact there atomically. Exits non-zero with every problem when the
//! model is invalid.

use clap::Parser;
use flatcar_microcloud::bundle::ChangeKind;
use flatcar_microcloud::{Bundle, BundleSecrets};
use std::path::PathBuf;
use std::process::ExitCode;

/// Build, plan and write the reference cloud.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Bundle directory.
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// Show the plan (with diffs) but write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print unified diffs of changed files.
    #[arg(long)]
    diff: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let cluster = match flatcar_microcloud::reference::cluster() {
        Ok(c) => c,
        Err(problems) => {
            eprint!("{problems}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", cluster.summary());
    println!();
    let mut secrets = BundleSecrets::from_bundle_dir(&args.out);
    let bundle = match Bundle::render(&cluster, &mut secrets) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let plan = match bundle.plan(&args.out) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    print!("{plan}");
    if args.diff || args.dry_run {
        for c in plan
            .changes
            .iter()
            .filter(|c| c.kind == ChangeKind::Changed)
        {
            match &c.diff {
                Some(d) => print!("{d}"),
                None => println!("  (secret {} changed; not shown)", c.path),
            }
        }
    }
    if args.dry_run {
        println!("dry run: nothing written");
        return ExitCode::SUCCESS;
    }
    if plan.is_empty() {
        println!("{} is up to date: nothing to write", args.out.display());
    } else if let Err(e) = bundle.write_to(&args.out) {
        eprintln!("error: {e} (the previous bundle is intact)");
        return ExitCode::FAILURE;
    } else {
        println!(
            "wrote {} files to {}",
            bundle.files().len(),
            args.out.display()
        );
    }
    println!(
        "diagram: {0}/diagram/cloud.dot (dot -Tsvg), {0}/diagram/cloud.mmd (Mermaid)",
        args.out.display()
    );
    ExitCode::SUCCESS
}
