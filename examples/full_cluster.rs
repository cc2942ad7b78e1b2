//! The reference cloud: `cargo run --example full_cluster [-- --out DIR]`.
//!
//! Builds the cloud of the design from one builder chain (in
//! `src/reference.rs`, so tests build the same cloud on test addresses), or
//! loads a model file with `--model cloud.toml` (TOML or JSON, as saved by
//! `model::save`; same validation), prints it, shows the plan against the bundle directory and writes every
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
    /// Load the cloud from this model file (`.toml` or `.json`) instead of
    /// building the reference cloud.
    #[arg(long, value_name = "FILE")]
    model: Option<PathBuf>,
    /// Bundle directory.
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// Show the plan (with diffs) but write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print unified diffs of changed files.
    #[arg(long)]
    diff: bool,
    /// Define the pool, volumes, networks and domains at this libvirt URI
    /// (e.g. qemu:///system); prints the plan first. Nothing is started.
    #[cfg(feature = "libvirt")]
    #[arg(long, value_name = "URI")]
    apply: Option<String>,
    /// Remove every libvirt object this cluster owns at this URI.
    #[cfg(feature = "libvirt")]
    #[arg(long, value_name = "URI")]
    destroy: Option<String>,
}

/// `--apply URI` / `--destroy URI`: prints the plan (one line per object:
/// action, kind, name, reason), then applies it. Returns whether one ran.
#[cfg(feature = "libvirt")]
fn libvirt(
    args: &Args,
    cluster: &flatcar_microcloud::topology::Cluster,
) -> Result<bool, flatcar_microcloud::libvirt::Error> {
    use flatcar_microcloud::libvirt::apply;
    let (uri, destroying) = match (&args.apply, &args.destroy) {
        (_, Some(uri)) => (uri, true),
        (Some(uri), None) => (uri, false),
        (None, None) => return Ok(false),
    };
    let conn = apply::connect(uri)?;
    let plan = if destroying {
        apply::destroy_plan(&conn, cluster)?
    } else {
        apply::plan(&conn, cluster)?
    };
    let verb = if destroying { "destroy" } else { "apply" };
    println!("libvirt {verb} plan at {uri}: {} change(s)", plan.changes());
    print!("{plan}");
    if plan.changes() == 0 {
        println!("nothing changes");
        return Ok(true);
    }
    let report = apply_with_bar(&conn, &plan)?;
    let what = if destroying {
        "every object this cluster owns is gone"
    } else {
        "networks and domains are defined, not started"
    };
    println!(
        "{verb}: {} change(s), {} mutating libvirt call(s); {what}; foreign objects untouched",
        report.done.len(),
        report.mutations
    );
    if !destroying {
        let again = apply::plan(&conn, cluster)?;
        println!("re-plan at {uri}: {} change(s)", again.changes());
    }
    Ok(true)
}

/// Applies `plan`, drawing a progress bar on stderr for multi-object plans
/// (hidden when stderr is not a terminal) from the library's progress callback.
#[cfg(feature = "libvirt")]
fn apply_with_bar(
    conn: &flatcar_microcloud::libvirt::apply::Connect,
    plan: &flatcar_microcloud::libvirt::apply::Plan,
) -> Result<flatcar_microcloud::libvirt::apply::Report, flatcar_microcloud::libvirt::Error> {
    let total = plan.changes();
    let bar = (total > 1).then(|| {
        let b = indicatif::ProgressBar::new(total as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let r = flatcar_microcloud::libvirt::apply::apply_with(conn, plan, &mut |i, _, s| {
        if let Some(b) = &bar {
            b.set_position(i.saturating_sub(1) as u64);
            b.set_message(s.to_string());
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    r
}

fn main() -> ExitCode {
    let args = Args::parse();
    let cluster = match &args.model {
        Some(path) => match flatcar_microcloud::model::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        },
        None => match flatcar_microcloud::reference::cluster() {
            Ok(c) => c,
            Err(problems) => {
                eprint!("{problems}");
                return ExitCode::FAILURE;
            }
        },
    };
    print!("{}", cluster.summary());
    println!();
    #[cfg(feature = "libvirt")]
    match libvirt(&args, &cluster) {
        Ok(true) => return ExitCode::SUCCESS,
        Ok(false) => {}
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
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
