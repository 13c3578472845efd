//! Replays every checked-in seed (`seeds/<target>/*`) through its fuzz target, on stable Rust:
//! CI builds the targets and proves each still holds on the inputs that matter. A long fuzzing
//! session (`cargo fuzz run <target> seeds/<target>`) starts from the same seeds.

use std::path::Path;

#[test]
fn every_target_holds_on_its_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    for (name, target) in acr_fuzz::TARGETS {
        let dir = root.join(name);
        let mut seeds: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        seeds.sort();
        assert!(!seeds.is_empty(), "no seeds for {name}");
        for seed in &seeds {
            let data = std::fs::read(seed).unwrap();
            target(&data);
        }
        println!("{name}: {} seeds", seeds.len());
    }
}
