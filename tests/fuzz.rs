//! Replays the committed fuzz inputs on stable: every file of `fuzz/seeds/<target>/` and
//! `fuzz/regressions/<target>/` goes through the same harness the cargo-fuzz target runs
//! (`fuzz/src/lib.rs`, included here as a module), with the same allocation bound. A crash or
//! hang the fuzzer once found is committed under `fuzz/regressions/` with its fix, so it stays
//! checked by `cargo xtask ci` without nightly or cargo-fuzz. See `fuzz/README.md`.

use std::fs;
use std::panic;
use std::path::Path;

#[path = "../fuzz/src/lib.rs"]
mod harness;

#[global_allocator]
static ALLOC: harness::MaxAlloc = harness::MaxAlloc;

/// One test only: the harnesses check for fd leaks, which needs no other test opening fds at
/// the same time in this process.
#[test]
fn committed_fuzz_inputs_replay_cleanly() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    let mut failures = Vec::new();
    for (target, run) in harness::TARGETS {
        for kind in ["seeds", "regressions"] {
            let Ok(entries) = fs::read_dir(fuzz.join(kind).join(target)) else {
                continue;
            };
            let mut files: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
            files.sort();
            for file in files {
                let data = fs::read(&file).expect("read a fuzz input");
                if panic::catch_unwind(|| run(&data)).is_err() {
                    failures.push(format!("{target}: {}", file.display()));
                }
                replayed += 1;
            }
        }
    }
    assert!(failures.is_empty(), "fuzz inputs that fail: {failures:#?}");
    assert!(
        replayed >= 4,
        "only {replayed} fuzz inputs found under {}",
        fuzz.display()
    );
}
