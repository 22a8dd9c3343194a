//! Replays every checked-in fuzz corpus file (fuzz/corpus/<target>/*) through its target, so
//! an ordinary `cargo test` runs what the fuzzers found, and a few seeds per target besides.

use std::path::Path;

#[test]
fn every_target_replays_its_corpus() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let mut total = 0;
    for (name, target) in postie_fuzz::TARGETS {
        let dir = corpus.join(name);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|_| panic!("no corpus for {name} in {}", dir.display()));
        let mut count = 0;
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{name} failed on {}", path.display());
            count += 1;
        }
        assert!(count > 0, "the corpus of {name} is empty");
        total += count;
    }
    eprintln!("replayed {total} corpus files");
}

#[test]
fn every_target_has_a_cargo_fuzz_binary() {
    let targets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/fuzz_targets");
    for (name, _) in postie_fuzz::TARGETS {
        assert!(
            targets.join(format!("{name}.rs")).exists(),
            "fuzz/fuzz_targets/{name}.rs is missing"
        );
    }
}
