//! The cache under attack and under stress: planted symlinks, foreign folders, odd umasks,
//! corrupt entries, read-only and full disks, a lock holder killed mid-fetch, hostile hosts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::*;
use acr_tests::emulator::{EndpointKind, Fault, FaultAction};
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
    let (w, _) = sandbox_with_secret_principal();
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
    let (w, _) = sandbox_with_secret_principal();
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
fn a_symlink_to_a_valid_entry_is_a_miss() {
    // The link's target is a whole, fresh entry for this very key: only the refusal to follow
    // a link at an entry (O_NOFOLLOW, with the platform's own value) makes it a miss.
    let (w, _) = sandbox_with_secret_principal();
    let first = answer(&get(&w, &w.registry));
    let entry = reg_entry(&w.cache_dir());
    let elsewhere = w.path("elsewhere.json");
    std::fs::rename(&entry, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &entry).unwrap();
    let again = answer(&get(&w, &w.registry));
    assert_eq!(
        w.emu.counters().exchange(),
        2,
        "the entry behind the link was served"
    );
    assert_ne!(again["Secret"], first["Secret"]);
}

#[test]
fn a_cache_folder_owned_by_another_user_is_refused() {
    let (w, _) = sandbox_with_secret_principal();
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
    let (w, _) = sandbox_with_secret_principal();
    let out = get_under_umask(&w, "000");
    assert!(out.status.success(), "{}", stdout(&out));
    let dir = w.cache_dir();
    assert_eq!(mode(&dir), 0o700);
    for p in entries(&dir) {
        assert_eq!(mode(&p), 0o600, "{p:?}");
    }
    // A folder we did not create is used as it is: a readable one keeps its mode (its files are
    // still 0600); one that others can write is refused and keeps its mode too.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let entry = reg_entry(&dir);
    std::fs::remove_file(entry).unwrap();
    answer(&get(&w, &w.registry));
    assert_eq!(mode(&dir), 0o755);
    assert_eq!(mode(&reg_entry(&dir)), 0o600);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o775)).unwrap();
    let o = get(&w, &w.registry);
    answer(&o);
    assert!(stderr(&o).contains("chmod go-w"), "{}", stderr(&o));
    assert_eq!(mode(&dir), 0o775);
}

/// A file's permission bits, with the sticky, setuid and setgid bits.
fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().mode() & 0o7777
}

/// `get` for the sandbox's registry, run through a shell that first sets `umask`.
fn get_under_umask(w: &acr_tests::sandbox::Sandbox, umask: &str) -> std::process::Output {
    // By its full path: the sandbox's PATH is an empty folder.
    let out = Command::new("/bin/sh")
        .args([
            "-c",
            &format!(
                "umask {umask}; echo {} | exec {} get",
                w.registry,
                acr_tests::sandbox::shell_words(&w.bin)
            ),
        ])
        .env_clear()
        .envs(&w.env)
        .output()
        .unwrap();
    acr_tests::sandbox::assert_no_secret(&w.emu, &out.stderr, "stderr of get");
    out
}

#[test]
fn an_existing_world_writable_cache_folder_keeps_its_mode_and_is_refused() {
    let (w, _) = sandbox_with_secret_principal();
    let dir = w.cache_dir();
    std::fs::create_dir_all(&dir).unwrap();
    // A shared folder such as /tmp: everybody may create files in it.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    // `doctor` looks at the folder; it never changes it.
    let o = w.run(&["doctor", &w.registry], "");
    assert!(stdout(&o).contains("NOT USABLE"), "{}", stdout(&o));
    assert_eq!(mode(&dir), 0o1777, "doctor changed the folder's mode");
    // `get` still answers, without caching, and says in one line how to fix the folder.
    let o = get(&w, &w.registry);
    answer(&o);
    let fix = format!("chmod go-w {}", dir.display());
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().filter(|l| l.contains(&fix)).collect();
    assert_eq!(lines.len(), 1, "one line says it: {err}");
    assert!(
        lines[0].contains("not caching tokens: refusing to use")
            && lines[0].contains("ACR_CACHE_DIR / --cache-dir"),
        "{err}"
    );
    assert_eq!(mode(&dir), 0o1777, "get changed the folder's mode");
    assert!(entries(&dir).is_empty(), "nothing written there");
    answer(&get(&w, &w.registry));
    assert_eq!(
        w.emu.counters().exchange(),
        3,
        "not cached: every get fetches"
    );
}

#[test]
fn an_existing_0755_cache_folder_keeps_its_mode_and_its_files_are_private() {
    let (w, _) = sandbox_with_secret_principal();
    let dir = w.cache_dir();
    std::fs::create_dir_all(&dir).unwrap();
    // Like /var/lib/kubelet: made by someone else, readable by all, writable by its owner.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = w.run(&["doctor", &w.registry], "");
    assert!(o.status.success(), "{}", stdout(&o));
    assert_eq!(mode(&dir), 0o755, "doctor changed the folder's mode");
    let first = answer(&get(&w, &w.registry));
    assert_eq!(mode(&dir), 0o755, "get changed the folder's mode");
    assert!(!entries(&dir).is_empty());
    for p in entries(&dir) {
        assert_eq!(mode(&p), 0o600, "{p:?}");
    }
    let again = answer(&get(&w, &w.registry));
    assert_eq!(again["Secret"], first["Secret"], "the folder is used");
    assert_eq!(w.emu.counters().exchange(), 1);
}

#[test]
fn missing_parents_get_the_umask_mode_and_only_the_cache_folder_is_private() {
    let (mut w, _) = sandbox_with_secret_principal();
    for (umask, parents) in [("022", 0o755), ("027", 0o750)] {
        let top = w.path(&format!("umask-{umask}"));
        let dir = top.join("parent/cache");
        w.set("ACR_CACHE_DIR", dir.to_str().unwrap());
        let out = get_under_umask(&w, umask);
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
        assert_eq!(mode(&top), parents, "umask {umask}: {top:?}");
        assert_eq!(mode(&top.join("parent")), parents, "umask {umask}");
        assert_eq!(mode(&dir), 0o700, "umask {umask}: the cache folder");
        for p in entries(&dir) {
            assert_eq!(mode(&p), 0o600, "{p:?}");
        }
    }
}

#[test]
fn garbage_truncated_empty_and_other_version_entries_are_replaced() {
    let (w, _) = sandbox_with_secret_principal();
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
    let (mut w, _) = sandbox_with_secret_principal();
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
    if !acr_tests::sandbox::in_private_netns(&[]) {
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
    let (w, _) = sandbox_with_secret_principal();
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
    let (mut w, _) = sandbox_with_secret_principal();
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
    let (w, _) = sandbox_with_secret_principal();
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
    let (w, _) = sandbox_with_secret_principal();
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
    let (w, _) = sandbox_with_secret_principal();
    // Kill 24 cold fetches at staggered moments across their life (before, during and after the
    // exchange and the write); erase between rounds so each one fetches and writes. Count the
    // rounds whose kill came before the exchange, and those that left a whole entry: the test
    // only proves something if the kills land on both sides of the write.
    // The kills spread over one whole cold `get` as timed here, at least 400 ms: a binary run
    // through an emulator (scripts/test-cross.sh, qemu-user) lives several times longer.
    w.run(&["erase"], &w.registry);
    let started = std::time::Instant::now();
    answer(&get(&w, &w.registry));
    let life = started.elapsed().max(Duration::from_millis(400));
    // At least 24 rounds, more (up to 48, the kills ever later) until one wrote: under load
    // the rounds' processes may live longer than the timed one.
    let (mut before_exchange, mut written) = (0, 0);
    for round in 0..48u32 {
        if round >= 24 && before_exchange > 0 && written > 0 {
            break;
        }
        w.run(&["erase"], &w.registry);
        let exchanges = w.emu.counters().exchange();
        let mut child = w.spawn(&["get"], &w.registry);
        // 5 ms to about 1.3 lives in 24 rounds (5.5 in 48): early kills land before the
        // exchange, late ones after the write even on a loaded machine.
        std::thread::sleep(Duration::from_millis(5) + life * (round * round) / 400);
        let _ = child.kill();
        child.wait().unwrap();
        if w.emu.counters().exchange() == exchanges {
            before_exchange += 1;
        }
        if entries(&w.cache_dir()).iter().any(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.starts_with("reg-") && name.ends_with(".json")
        }) {
            written += 1;
        }
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
    assert!(
        before_exchange > 0 && written > 0,
        "kills before the exchange: {before_exchange}, rounds that wrote: {written}"
    );
    // Whatever was left behind, the next get answers.
    answer(&get(&w, &w.registry));
}

/// A projected service-account token laid out as the kubelet writes it: the data in a
/// timestamped folder, `..data` a link to it, and `token` a link to `..data/token`. Each
/// [`ProjectedToken::rotate`] writes a new timestamped folder and swaps `..data` atomically, as
/// the kubelet's atomic writer does.
struct ProjectedToken {
    dir: std::path::PathBuf,
    generation: u32,
}

impl ProjectedToken {
    fn new(dir: std::path::PathBuf, token: &str) -> ProjectedToken {
        std::fs::create_dir_all(&dir).unwrap();
        let mut t = ProjectedToken { dir, generation: 0 };
        t.rotate(token);
        std::os::unix::fs::symlink("..data/token", t.path()).unwrap();
        t
    }

    /// The file to name in AZURE_FEDERATED_TOKEN_FILE.
    fn path(&self) -> std::path::PathBuf {
        self.dir.join("token")
    }

    fn rotate(&mut self, token: &str) {
        self.generation += 1;
        let stamp = format!("..2024_01_01_{:02}_00_00.{:09}", self.generation, 123456789);
        let data = self.dir.join(&stamp);
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("token"), token).unwrap();
        std::fs::set_permissions(data.join("token"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let old = std::fs::read_link(self.dir.join("..data")).ok();
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&stamp, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
        if let Some(old) = old {
            std::fs::remove_dir_all(self.dir.join(old)).unwrap();
        }
    }
}

#[test]
fn a_rotated_projected_token_of_another_subject_is_not_served_from_the_cache() {
    let mut w = sandbox();
    let issuer = "https://oidc.prod-aks.azure.com/cluster-1/";
    let trusted = "system:serviceaccount:team-a:puller";
    let other = "system:serviceaccount:team-b:intruder";
    // The app trusts only team-a's service account.
    let app = w.emu.add_federated_principal(
        TENANT,
        "55555555-5555-5555-5555-555555555555",
        issuer,
        trusted,
    );
    w.emu.grant(
        &app.client_id,
        &w.registry,
        acr_tests::emulator::Role::AcrPull,
    );
    let mint = |subject: &str| {
        w.emu.mint_service_account_token(
            issuer,
            subject,
            "api://AzureADTokenExchange",
            Duration::from_secs(3600),
        )
    };
    let (token_a, token_b, token_a2) = (mint(trusted), mint(other), mint(trusted));
    let mut projected = ProjectedToken::new(w.path("serviceaccount"), &token_a);
    assert!(
        std::fs::symlink_metadata(projected.path())
            .unwrap()
            .file_type()
            .is_symlink()
    );
    w.set("AZURE_TENANT_ID", TENANT);
    w.set("AZURE_CLIENT_ID", &app.client_id);
    w.set(
        "AZURE_FEDERATED_TOKEN_FILE",
        projected.path().to_str().unwrap(),
    );
    let first = answer(&get(&w, &w.registry));
    assert_eq!(
        claims(first["Secret"].as_str().unwrap())["sub"],
        app.object_id.as_str()
    );
    let cached = entries(&w.cache_dir());
    assert_eq!(w.emu.counters().entra(), 1);

    // The same path now holds team-b's token, which the app does not trust: Entra must be asked
    // (and refuse), not team-a's cached token handed out.
    projected.rotate(&token_b);
    let o = get(&w, &w.registry);
    assert_eq!(
        o.status.code(),
        Some(1),
        "team-b was answered (from team-a's cache entry)"
    );
    assert!(
        !stdout(&o).contains(first["Secret"].as_str().unwrap()),
        "team-a's token went to team-b"
    );
    assert_eq!(w.emu.counters().entra(), 2, "Entra was asked for team-b");
    assert_eq!(w.emu.counters().exchange(), 1);
    let reg = |v: &[std::path::PathBuf]| -> Vec<std::path::PathBuf> {
        v.iter()
            .filter(|p| {
                let n = p.file_name().unwrap().to_str().unwrap();
                n.starts_with("reg-") && n.ends_with(".json")
            })
            .cloned()
            .collect()
    };
    assert_eq!(
        reg(&entries(&w.cache_dir())),
        reg(&cached),
        "team-a's entry is untouched and no entry was written for team-b"
    );

    // Back to team-a's token: its entry is found again, without a request.
    projected.rotate(&token_a2);
    let again = answer(&get(&w, &w.registry));
    assert_eq!(again["Secret"], first["Secret"]);
    assert_eq!(w.emu.counters().entra(), 2);
    assert_eq!(w.emu.counters().exchange(), 1);
}
