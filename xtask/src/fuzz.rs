//! `cargo xtask fuzz NAME SECONDS`: runs one cargo-fuzz target of `fuzz/` (nightly only) for
//! that long, with the project's libFuzzer settings; `cargo xtask fuzz --list` lists them.

use std::ffi::OsString;
use std::fs;
use std::path::Path;

use crate::run::{succeeds, Step};
use crate::Result;

/// The fuzz package (its own workspace, outside the stable one).
const FUZZ_DIR: &str = "fuzz";

/// libFuzzer settings for every run: one process, one job (the machine is shared); a single
/// input running 20 s is a hang (every harness read times out after 5 s); 2 GiB of RSS is an
/// out-of-memory; inputs up to 8 KiB (larger frames add nothing but slower mutation).
const LIBFUZZER_FLAGS: [&str; 4] = [
    "-timeout=20",
    "-rss_limit_mb=2048",
    "-max_len=8192",
    "-print_final_stats=1",
];

/// `cargo xtask fuzz NAME SECONDS [-- LIBFUZZER_ARGS...]` and `cargo xtask fuzz --list`.
pub(crate) fn fuzz(args: &[String]) -> Result<()> {
    let targets = targets()?;
    let (ours, extra) = match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => (args, &[][..]),
    };
    match ours {
        [list] if list == "--list" => {
            for target in &targets {
                println!("{target}");
            }
            Ok(())
        }
        [name, seconds] => {
            if !targets.contains(name) {
                return Err(format!(
                    "no fuzz target `{name}`; the targets are: {}",
                    targets.join(", ")
                ));
            }
            let seconds: u64 = seconds
                .parse()
                .map_err(|_| format!("SECONDS must be a whole number, not `{seconds}`"))?;
            run(name, seconds, extra)
        }
        _ => Err(format!(
            "usage: cargo xtask fuzz NAME SECONDS [-- LIBFUZZER_ARGS...] | cargo xtask fuzz \
             --list\ntargets: {}",
            targets.join(", ")
        )),
    }
}

/// The target names: the files of `fuzz/fuzz_targets/`.
fn targets() -> Result<Vec<String>> {
    let dir = Path::new(FUZZ_DIR).join("fuzz_targets");
    let entries = fs::read_dir(&dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".rs").map(str::to_owned)
        })
        .collect();
    names.sort();
    Ok(names)
}

fn run(name: &str, seconds: u64, extra: &[String]) -> Result<()> {
    // `cargo +nightly` needs rustup's proxy, not the toolchain's cargo that runs xtask.
    let cargo = OsString::from("cargo");
    if !succeeds(&cargo, &["+nightly", "--version"]) {
        return Err("fuzzing needs a nightly toolchain: `rustup toolchain install nightly`".into());
    }
    if !succeeds(&cargo, &["+nightly", "fuzz", "--version"]) {
        return Err("fuzzing needs cargo-fuzz: `cargo install cargo-fuzz`".into());
    }
    // New inputs go into corpus/NAME (not committed); the committed seeds and regressions are
    // read as well, so every run starts by replaying them.
    let corpus = format!("{FUZZ_DIR}/corpus/{name}");
    fs::create_dir_all(&corpus).map_err(|e| format!("cannot create {corpus}: {e}"))?;
    let mut step = Step::program(
        "cargo",
        &["+nightly", "fuzz", "run", "--fuzz-dir", FUZZ_DIR],
    )
    .args(&[name, corpus.as_str()]);
    for extra_dir in ["seeds", "regressions"] {
        let dir = format!("{FUZZ_DIR}/{extra_dir}/{name}");
        if Path::new(&dir).is_dir() {
            step = step.args(&[dir]);
        }
    }
    let max_total_time = format!("-max_total_time={seconds}");
    step.args(&["--", max_total_time.as_str()])
        .args(&LIBFUZZER_FLAGS)
        .args(extra)
        .run()
        .map_err(|e| {
            format!(
                "{e}\nA crash, hang or out-of-memory input is saved under {FUZZ_DIR}/artifacts/{name}/; \
                 minimize it with `cargo +nightly fuzz tmin --fuzz-dir {FUZZ_DIR} {name} FILE`, \
                 and commit it to {FUZZ_DIR}/regressions/{name}/ with its fix"
            )
        })
}
