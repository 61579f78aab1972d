//! Delivery timing (not a pass/fail test): `cargo test --release --lib
//! maildir::bench -- --ignored --nocapture`.

use super::*;
use crate::types::{Uid, UidValidity};
use std::io::Write;
use std::time::Instant;

const N: u32 = 10_000;
const EVERY: u32 = 500;

fn body() -> Vec<u8> {
    let mut v = b"Subject: bench\r\nFrom: a@b\r\n\r\n".to_vec();
    while v.len() < 5 * 1024 {
        v.extend_from_slice(b"lorem ipsum dolor sit amet, consectetur adipiscing elit\r\n");
    }
    v.truncate(5 * 1024);
    v
}

fn run(mode: SyncMode, threads: usize) -> f64 {
    let t = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR").to_string() + "/target").unwrap();
    let md = Maildir::open_or_create(t.path()).unwrap();
    let body = body();
    let date = UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    let start = Instant::now();
    let mut b = md
        .batch(&FolderName::new("Bench"), "acct")
        .unwrap()
        .sync_mode(mode)
        .fsync_parallelism(threads);
    for uid in 1..=N {
        let key = SourceKey::Imap {
            uidvalidity: UidValidity(1),
            uid: Uid(uid),
        };
        b.put(&body, &key, &Flags::default(), Some(date), false)
            .unwrap();
        if uid.is_multiple_of(EVERY) {
            b.commit().unwrap();
        }
    }
    b.commit().unwrap();
    start.elapsed().as_secs_f64()
}

/// The crates.md baseline: tmp, write, sync_data (or nothing), rename, dir
/// fsync every EVERY files.
fn run_raw(sync: bool) -> f64 {
    let t = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR").to_string() + "/target").unwrap();
    let md = Maildir::open_or_create(t.path()).unwrap();
    let body = body();
    let start = Instant::now();
    for i in 1..=N {
        let tmp = md.root().join("tmp").join(format!("m{i}"));
        let mut f = File::create(&tmp).unwrap();
        f.write_all(&body).unwrap();
        if sync {
            f.sync_data().unwrap();
        }
        drop(f);
        fs::rename(&tmp, md.root().join("cur").join(format!("m{i}:2,"))).unwrap();
        if sync && i.is_multiple_of(EVERY) {
            sync_dir(&md.root().join("cur")).unwrap();
        }
    }
    start.elapsed().as_secs_f64()
}

#[test]
#[ignore]
fn bench_delivery() {
    let rate = |s: f64| N as f64 / s;
    let show = |what: &str, v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let med = v[v.len() / 2];
        println!(
            "{what:40} median {med:6.2} s {:7.0} msg/s  runs {v:.2?}",
            rate(med)
        );
    };
    let rounds = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let (mut none, mut d1, mut d8, mut d32, mut raw, mut per) = Default::default();
    for _ in 0..rounds {
        Vec::push(&mut none, run_raw(false));
        Vec::push(&mut d8, run(SyncMode::Deferred, 8));
        Vec::push(&mut d32, run(SyncMode::Deferred, 32));
        Vec::push(&mut d1, run(SyncMode::Deferred, 1));
        if std::env::var_os("BENCH_SKIP_SLOW").is_none() {
            Vec::push(&mut raw, run_raw(true));
            Vec::push(&mut per, run(SyncMode::PerFile, 1));
        }
    }
    show("raw: no fsync at all (lower bound)", &mut none);
    show("Deferred, fsync 1 at a time", &mut d1);
    show("Deferred, fsync 8 in parallel", &mut d8);
    show("Deferred, fsync 32 in parallel", &mut d32);
    if !raw.is_empty() {
        show("raw: sync_data per file, dir/500", &mut raw);
        show("PerFile: sync_all per file, dir/500", &mut per);
    }
}
