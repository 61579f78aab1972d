//! man/ and completions/ are generated from the CLI; this fails when they
//! are stale. Regenerate with `cargo run -- generate`.

#[test]
fn man_pages_and_completions_are_fresh() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut stale = Vec::new();
    for (rel, bytes) in mailferry::docs::render() {
        match std::fs::read(root.join(&rel)) {
            Ok(on_disk) if on_disk == bytes => {}
            _ => stale.push(rel.display().to_string()),
        }
    }
    assert!(
        stale.is_empty(),
        "stale generated files {stale:?}: run `cargo run -- generate`"
    );
}
