//! The provider's cache folder over a node's life: one entry per service account and registry
//! would pile up forever; a cold run (one that writes an entry) removes the expired ones and
//! the lock files nobody uses any more, and nothing else.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::*;
use acr_broker::Secret;
use acr_broker::cache::{CACHE_VERSION, EntraEntry, RefreshEntry, key};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const HOUR: i64 = 3600;

fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

/// Sets a file's modification time to `ago` in the past.
fn age(p: &Path, ago: Duration) {
    std::fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(SystemTime::now() - ago)
        .unwrap();
}

fn hours(h: u64) -> Duration {
    Duration::from_secs(h * 3600)
}

/// Writes `bytes` at `dir/name`, 0600 as the cache writes, `ago` old; returns the name.
fn plant(dir: &Path, name: &str, bytes: &[u8], ago: Duration) -> String {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let p = dir.join(name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&p)
        .unwrap();
    f.write_all(bytes).unwrap();
    drop(f);
    age(&p, ago);
    name.to_string()
}

fn refresh_entry(expires_at: i64) -> Vec<u8> {
    serde_json::to_vec(&RefreshEntry {
        v: CACHE_VERSION,
        login_server: "gone.azurecr.io".into(),
        identity: "federated service-account token 0000".into(),
        refresh_token: Secret::new("not-a-real-token"),
        obtained_at: expires_at - 3 * HOUR,
        expires_at,
        lifetime: 3 * HOUR,
        audience: None,
    })
    .unwrap()
}

fn entra_entry(expires_at: i64) -> Vec<u8> {
    serde_json::to_vec(&EntraEntry {
        v: CACHE_VERSION,
        token: Secret::new("not-a-real-token"),
        expires_at,
    })
    .unwrap()
}

#[test]
fn a_cold_run_removes_expired_entries_and_stale_locks_and_keeps_the_rest() {
    let (w, _) = sandbox_with_node_principal();
    let dir: PathBuf = w.cache_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let now = unix_now();
    let k = |what: &str, i: usize| key(&[what, &i.to_string()]);
    let mut gone = BTreeSet::new();
    let mut kept = BTreeSet::new();

    // Service accounts long deleted: entries expired hours ago, half of them with their lock.
    for i in 0..20 {
        let name = format!("reg-{}.json", k("expired", i));
        gone.insert(plant(&dir, &name, &refresh_entry(now - 2 * HOUR), hours(5)));
        if i % 2 == 0 {
            gone.insert(plant(&dir, &format!("{name}.lock"), b"", hours(5)));
        }
    }
    for i in 0..10 {
        let name = format!("entra-{}.json", k("entra-expired", i));
        gone.insert(plant(&dir, &name, &entra_entry(now - 3 * HOUR), hours(4)));
        gone.insert(plant(&dir, &format!("{name}.lock"), b"", hours(4)));
    }
    // Lock files whose entry is gone, unused for minutes.
    for i in 0..6 {
        let name = format!("reg-{}.json.lock", k("orphan-lock", i));
        gone.insert(plant(&dir, &name, b"", Duration::from_secs(600)));
    }
    // Entries nobody can read, written days ago.
    for i in 0..3 {
        let name = format!("reg-{}.json", k("garbage-old", i));
        gone.insert(plant(&dir, &name, b"\x00garbage", hours(48)));
    }
    // A temp file a killed writer left.
    let temp = format!(
        ".reg-{}.json.4242.{}.tmp",
        k("killed", 0),
        "0123456789abcdef0123456789abcdef"
    );
    gone.insert(plant(&dir, &temp, b"{", hours(1)));

    // Live entries and their locks.
    for i in 0..5 {
        let name = format!("reg-{}.json", k("live", i));
        kept.insert(plant(&dir, &name, &refresh_entry(now + HOUR), hours(2)));
        kept.insert(plant(&dir, &format!("{name}.lock"), b"", hours(2)));
    }
    // Expired only minutes ago (kept for an hour), unreadable but recent, a lock another
    // process holds right now, a lock just made for an entry being fetched.
    for i in 0..3 {
        let name = format!("reg-{}.json", k("just-expired", i));
        kept.insert(plant(&dir, &name, &refresh_entry(now - 600), hours(4)));
    }
    kept.insert(plant(
        &dir,
        &format!("reg-{}.json", k("garbage-new", 0)),
        b"garbage",
        hours(2),
    ));
    let held_name = format!("reg-{}.json.lock", k("held", 0));
    kept.insert(plant(&dir, &held_name, b"", hours(3)));
    let held = std::fs::File::open(dir.join(&held_name)).unwrap();
    held.lock().unwrap();
    kept.insert(plant(
        &dir,
        &format!("reg-{}.json.lock", k("fresh-lock", 0)),
        b"",
        Duration::ZERO,
    ));
    // Files that are not the cache's, whatever their age and name.
    kept.insert(plant(&dir, "notes.txt", b"mine", hours(100)));
    kept.insert(plant(&dir, ".backup.tmp", b"mine", hours(100)));
    kept.insert(plant(&dir, ".reg-x.json.1.2.tmp", b"mine", hours(100)));
    kept.insert(plant(&dir, "reg-not-a-key.json", b"mine", hours(100)));
    assert!(gone.len() >= 50, "many to remove: {}", gone.len());

    // One cold run: it fetches and writes entries, and tidies the folder on the way.
    let image = format!("{}/team/app:1", w.registry);
    response(&w.run(&[&w.azure_json(), EXCHANGE], &request(V1, &image)));
    assert_eq!(w.emu.counters().exchange(), 1, "a cold run");

    let after = names(&dir);
    let survived: Vec<_> = gone.intersection(&after).collect();
    assert!(survived.is_empty(), "not removed: {survived:?}");
    let lost: Vec<_> = kept.difference(&after).collect();
    assert!(lost.is_empty(), "removed: {lost:?}");
    // The run's own entries are there, and answer the next run.
    assert!(
        after
            .iter()
            .any(|n| n.starts_with("reg-") && n.ends_with(".json") && !kept.contains(n)),
        "{after:?}"
    );
    response(&w.run(&[&w.azure_json(), EXCHANGE], &request(V1, &image)));
    assert_eq!(w.emu.counters().exchange(), 1, "answered from the cache");
    drop(held);
}
