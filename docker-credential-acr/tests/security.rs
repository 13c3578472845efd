//! The cache under attack and under stress: planted symlinks, foreign folders, odd umasks,
//! corrupt entries, read-only and full disks, a lock holder killed mid-fetch, hostile hosts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use acr_tests::emulator::{EndpointKind, Fault, FaultAction};
use common::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;
use std::time::{Duration, Instant};

fn entries(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn reg_entry(dir: &std::path::Path) -> std::path::PathBuf {
    entries(dir)
        .into_iter()
        .find(|p| {
            let n = p.file_name().unwrap().to_str().unwrap();
            n.starts_with("reg-") && n.ends_with(".json")
        })
        .expect("a registry entry")
}

#[test]
fn a_symlink_planted_as_the_cache_folder_is_not_followed() {
    let (w, _) = world_with_secret_principal();
    let elsewhere = w.path("attacker");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::create_dir_all(w.cache_dir().parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&elsewhere, w.cache_dir()).unwrap();
    let o = get(&w, &w.registry);
    answer(&o);
    assert!(stderr(&o).contains("symlink"), "{}", stderr(&o));
    assert!(
        entries(&elsewhere).is_empty(),
        "nothing written through the link"
    );
}

#[test]
fn a_symlink_planted_at_an_entry_is_not_followed_and_its_target_is_untouched() {
    let (w, _) = world_with_secret_principal();
    let first = answer(&get(&w, &w.registry));
    let entry = reg_entry(&w.cache_dir());
    let victim = w.path("victim.json");
    std::fs::write(&victim, br#"{"precious":true}"#).unwrap();
    std::fs::remove_file(&entry).unwrap();
    std::os::unix::fs::symlink(&victim, &entry).unwrap();
    let again = answer(&get(&w, &w.registry));
    assert_ne!(
        again["Secret"], first["Secret"],
        "the link was a miss: a new token was fetched"
    );
    assert_eq!(std::fs::read(&victim).unwrap(), br#"{"precious":true}"#);
    assert!(
        !std::fs::symlink_metadata(&entry)
            .unwrap()
            .file_type()
            .is_symlink(),
        "replaced by a real file"
    );
}

#[test]
fn a_cache_folder_owned_by_another_user_is_refused() {
    let (w, _) = world_with_secret_principal();
    let dir = w.cache_dir();
    std::fs::create_dir_all(&dir).unwrap();
    // As root (CI), hand the folder to `nobody`.
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
    let o = get(&w, &w.registry);
    answer(&o);
    assert!(
        stderr(&o).contains("belongs to another user"),
        "{}",
        stderr(&o)
    );
    assert!(entries(&dir).is_empty());
}

#[test]
fn modes_are_private_whatever_the_umask() {
    let (w, _) = world_with_secret_principal();
    let out = Command::new("sh")
        .args([
            "-c",
            &format!("umask 000; echo {} | exec {BIN} get", w.registry),
        ])
        .env_clear()
        .envs(&w.env)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let dir = w.cache_dir();
    assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
    for p in entries(&dir) {
        assert_eq!(
            std::fs::metadata(&p).unwrap().mode() & 0o777,
            0o600,
            "{p:?}"
        );
    }
    // A folder left group- and world-readable is narrowed.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let entry = reg_entry(&dir);
    std::fs::remove_file(entry).unwrap();
    answer(&get(&w, &w.registry));
    assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
}

#[test]
fn garbage_truncated_empty_and_other_version_entries_are_replaced() {
    let (w, _) = world_with_secret_principal();
    answer(&get(&w, &w.registry));
    let entry = reg_entry(&w.cache_dir());
    let good = std::fs::read(&entry).unwrap();
    let other_version = String::from_utf8(good.clone())
        .unwrap()
        .replace("\"v\":1", "\"v\":7");
    for (i, bad) in [
        b"".to_vec(),
        b"\x00\xffgarbage".to_vec(),
        good[..good.len() / 2].to_vec(),
        other_version.into_bytes(),
    ]
    .into_iter()
    .enumerate()
    {
        std::fs::write(&entry, &bad).unwrap();
        answer(&get(&w, &w.registry));
        assert_eq!(
            w.emu.counters().exchange(),
            2 + i,
            "case {i}: a miss, one new exchange"
        );
        let fresh: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&entry).unwrap()).unwrap();
        assert_eq!(fresh["v"], 1, "case {i}: replaced by a valid entry");
    }
}

#[test]
fn an_unusable_cache_location_degrades_to_no_caching() {
    let (mut w, _) = world_with_secret_principal();
    // A file where the cache folder's parent should be: the folder cannot be made.
    std::fs::write(w.path("not-a-folder"), b"").unwrap();
    w.set(
        "ACR_CACHE_DIR",
        w.path("not-a-folder/cache").to_str().unwrap(),
    );
    let o = get(&w, &w.registry);
    answer(&o);
    assert!(stderr(&o).contains("not caching tokens"), "{}", stderr(&o));
    answer(&get(&w, &w.registry));
    assert_eq!(
        w.emu.counters().exchange(),
        2,
        "no cache: every get fetches"
    );
}

#[test]
fn read_only_and_full_cache_filesystems_degrade_to_no_caching() {
    if !acr_tests::sandbox::in_private_netns(
        "read_only_and_full_cache_filesystems_degrade_to_no_caching",
        &[],
    ) {
        return;
    }
    let mount = |args: &[&str]| {
        let s = Command::new("mount")
            .args(args)
            .status()
            .expect("mount runs");
        assert!(s.success(), "mount {args:?}");
    };
    // Read-only: a cache folder that exists (with an old entry) on a read-only bind mount.
    let (w, _) = world_with_secret_principal();
    answer(&get(&w, &w.registry));
    let dir = w.cache_dir();
    for p in entries(&dir) {
        if p.to_str().unwrap().contains("reg-") && p.extension().is_some_and(|e| e == "json") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let d = dir.to_str().unwrap();
    mount(&["--bind", d, d]);
    mount(&["-o", "remount,bind,ro", d]);
    let o = get(&w, &w.registry);
    answer(&o);
    assert!(
        stderr(&o).contains("not caching") || stderr(&o).contains("not locking"),
        "{}",
        stderr(&o)
    );
    assert_eq!(w.emu.counters().exchange(), 2);

    // Full: a tiny tmpfs filled to the brim.
    let (mut w, _) = world_with_secret_principal();
    let full = w.path("full");
    std::fs::create_dir_all(&full).unwrap();
    mount(&[
        "-t",
        "tmpfs",
        "-o",
        "size=64k,mode=0700",
        "tmpfs",
        full.to_str().unwrap(),
    ]);
    let _ = std::fs::write(full.join("filler"), vec![0u8; 128 * 1024]);
    w.set("ACR_CACHE_DIR", full.join("cache").to_str().unwrap());
    let o = get(&w, &w.registry);
    answer(&o);
    assert!(stderr(&o).contains("not caching"), "{}", stderr(&o));
}

#[test]
fn a_lock_holder_killed_mid_fetch_does_not_block_the_others() {
    let (w, _) = world_with_secret_principal();
    // The first fetch hangs at Entra for 20 s while holding the cache lock.
    w.emu.set_fault(Fault::once(
        EndpointKind::Entra,
        FaultAction::Latency(Duration::from_secs(20)),
    ));
    let mut holder = w.spawn(&["get"], &w.registry);
    let start = Instant::now();
    while w.emu.counters().entra() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the holder reached Entra"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    holder.kill().unwrap(); // SIGKILL
    holder.wait().unwrap();
    let start = Instant::now();
    answer(&get(&w, &w.registry));
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "not blocked by the dead holder: {:?}",
        start.elapsed()
    );
}

#[test]
fn hostile_hosts_make_no_request_and_touch_no_listener() {
    let (w, _) = world_with_secret_principal();
    let trap = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = trap.local_addr().unwrap().port();
    trap.set_nonblocking(true).unwrap();
    let long = format!("{}.azurecr.io", "a".repeat(5000));
    let hostile = [
        format!("127.0.0.1:{port}"),
        format!("https://127.0.0.1:{port}/v2/"),
        format!("localhost:{port}"),
        format!("myregistry.azurecr.io@127.0.0.1:{port}"),
        format!("https://myregistry.azurecr.io@127.0.0.1:{port}"),
        format!("https://127.0.0.1:{port}#myregistry.azurecr.io"),
        format!("https://127.0.0.1:{port}?myregistry.azurecr.io"),
        format!("myregistry.azurecr.io.127.0.0.1.nip.io:{port}"),
        format!("http://myregistry.azurecr.io:{port}"),
        "myregistry.azurecr.io.evil.example".to_string(),
        "myregistry.azurecr.io%2eevil.example".to_string(),
        "myregistry%2eazurecr.io".to_string(),
        "xn--mregistry-8wa.azurecr.io.evil".to_string(),
        "myrégistry.azurecr.io".to_string(),
        "[::1]:443".to_string(),
        "2130706433".to_string(),
        "myregistry.azurecr.io..".to_string(),
        "myregistry.azurecr.io:443:443".to_string(),
        long,
    ];
    for h in &hostile {
        let o = get(&w, h);
        assert_eq!(
            (o.status.code(), stdout(&o)),
            (Some(1), format!("{NOT_FOUND}\n")),
            "{h}"
        );
    }
    assert_eq!(w.emu.counters().total(), 0);
    assert!(
        trap.accept().is_err(),
        "the trap listener was never contacted"
    );
}

#[test]
fn processes_killed_at_any_moment_never_leave_a_torn_entry() {
    let (w, _) = world_with_secret_principal();
    // Kill 24 cold fetches at staggered moments across their life (before, during and after the
    // exchange and the write); erase between rounds so each one fetches and writes.
    for round in 0..24u64 {
        w.run(&["erase"], &w.registry);
        let mut child = w.spawn(&["get"], &w.registry);
        std::thread::sleep(Duration::from_millis(5 + round * 7));
        let _ = child.kill();
        child.wait().unwrap();
        for p in entries(&w.cache_dir()) {
            let name = p.file_name().unwrap().to_str().unwrap().to_string();
            if name.ends_with(".json") && !name.starts_with('.') {
                let bytes = std::fs::read(&p).unwrap();
                assert!(
                    serde_json::from_slice::<serde_json::Value>(&bytes).is_ok(),
                    "round {round}: {name} is torn"
                );
            }
        }
    }
    // Whatever was left behind, the next get answers.
    answer(&get(&w, &w.registry));
}
