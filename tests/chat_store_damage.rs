//! A damaged chat store is refused with a message that names the file and
//! says what to do, never a panic; an empty one is refused too; a clean
//! SIGTERM closes the store, so the next start needs no repair; `corral
//! store check` and `corral store backup` work on a real store.

mod support {
    pub(crate) mod corral_cmd;
    pub(crate) mod serve;
}

use std::cell::Cell;
use std::path::Path;
use std::process::Output;
use std::rc::Rc;

use corral::client::{Client, Codec};
use serde_json::json;
use support::corral_cmd::{corral, run};
use support::serve::Serve;

/// `corral serve` on `data_dir` (the test config: ephemeral ports).
fn serve_once(data_dir: &Path) -> Output {
    let manifest = env!("CARGO_MANIFEST_DIR");
    let config = format!("{manifest}/config/sys.toml");
    run(corral(
        &["serve", "--config", &config, "--env", "test"],
        data_dir,
    ))
}

/// A store with a user, a channel and a publication, written by a real
/// node stopped with SIGTERM.
async fn good_store(data_dir: &Path) {
    let dir = data_dir.to_str().expect("a UTF-8 temporary path");
    let mut node = Serve::start(&[("CORRAL__NODE__DATA_DIR", dir)]);
    let addr = node.listening("rpc");
    let c = Client::connect(addr, Codec::Json).await.expect("connects");
    c.call("login", json!({"user": "ann"}))
        .await
        .expect("login");
    c.call("channel", json!({"channel": "room"}))
        .await
        .expect("channel");
    c.call("publish", json!({"channel": "room", "message": "kept"}))
        .await
        .expect("publish");
    drop(c);
    let pid = i32::try_from(node.child.id()).expect("a pid fits i32");
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    node.wait_for(|v| (v["fields"]["message"] == "node stopped").then_some(()));
    let status = node.child.wait().expect("exits");
    assert!(status.success(), "{status:?}");
}

/// Whether opening `file` made redb repair it.
fn needed_repair(file: &Path) -> bool {
    let repaired = Rc::new(Cell::new(false));
    let seen = repaired.clone();
    let db = redb::Database::builder()
        .set_repair_callback(move |_| seen.set(true))
        .open(file)
        .expect("the store opens");
    drop(db);
    repaired.get()
}

/// The node refused to start: not a panic (101), a message naming the file
/// and what to do, no backtrace.
fn assert_refused(out: &Output, file: &Path, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(101), "{what}: a panic: {stderr}");
    assert!(!out.status.success(), "{what}: it started: {stderr}");
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    assert!(
        stderr.contains(&file.display().to_string()),
        "{what}: the message names the file: {stderr}"
    );
    assert!(
        stderr.contains("backup") && stderr.contains("move it aside"),
        "{what}: the message says what to do: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_sigterm_closes_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    good_store(dir.path()).await;
    assert!(
        !needed_repair(&dir.path().join("chat.redb")),
        "the store was not closed at shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_stores_are_refused_with_a_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    good_store(dir.path()).await;
    let file = dir.path().join("chat.redb");
    let good = std::fs::read(&file).expect("read");

    // Truncated to its first page.
    std::fs::write(&file, &good[..4096]).expect("write");
    assert_refused(&serve_once(dir.path()), &file, "truncated");

    // Header bytes flipped.
    let mut flipped = good.clone();
    for b in &mut flipped[16..40] {
        *b ^= 0xff;
    }
    std::fs::write(&file, &flipped).expect("write");
    assert_refused(&serve_once(dir.path()), &file, "flipped header");

    // Not a store at all.
    std::fs::write(&file, vec![0x5a; 64 * 1024]).expect("write");
    assert_refused(&serve_once(dir.path()), &file, "garbage");

    // Zero-length: data was expected there; refused, not started empty.
    std::fs::write(&file, b"").expect("write");
    let out = serve_once(dir.path());
    assert_refused(&out, &file, "empty");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("empty"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::metadata(&file).expect("stat").len(), 0);

    // `store check` says the same, exit 1.
    std::fs::write(&file, &good[..4096]).expect("write");
    let dirs = dir.path().to_str().expect("utf-8");
    let out = run(corral(&["store", "check", "--data-dir", dirs], dir.path()));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_refused(&out, &file, "store check");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_check_and_backup() {
    let dir = tempfile::tempdir().expect("tempdir");
    good_store(dir.path()).await;
    let dirs = dir.path().to_str().expect("utf-8");
    let out = run(corral(&["store", "check", "--data-dir", dirs], dir.path()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    for part in [
        "OK",
        "users 1",
        "channels 1",
        "events 1",
        "repair: not needed",
    ] {
        assert!(stdout.contains(part), "{part:?} missing: {stdout}");
    }

    let backup_dir = tempfile::tempdir().expect("tempdir");
    let dest = backup_dir.path().join("copy.redb");
    let dests = dest.to_str().expect("utf-8");
    let out = run(corral(
        &["store", "backup", dests, "--data-dir", dirs],
        dir.path(),
    ));
    assert!(out.status.success(), "{out:?}");
    // A backup never overwrites.
    let again = run(corral(
        &["store", "backup", dests, "--data-dir", dirs],
        dir.path(),
    ));
    assert_eq!(again.status.code(), Some(1), "{again:?}");
    // The copy is a store with the same content: check it, then serve it.
    let out = run(corral(&["store", "check", "--file", dests], dir.path()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("events 1"), "{stdout}");
    std::fs::rename(&dest, backup_dir.path().join("chat.redb")).expect("rename");
    let restored = backup_dir.path().to_str().expect("utf-8");
    let node = Serve::start(&[("CORRAL__NODE__DATA_DIR", restored)]);
    let addr = node.listening("rpc");
    let c = Client::connect(addr, Codec::Json).await.expect("connects");
    let h = c
        .call("history", json!({"channel": "room"}))
        .await
        .expect("history");
    assert_eq!(h["messages"][0]["message"], "kept");
}
