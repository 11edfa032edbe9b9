//! `corral check-config` as a user runs it: exit codes and messages.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn corral() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_corral"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    // Keep the caller's CORRAL__ variables out of the tests.
    for (k, _) in std::env::vars() {
        if k.starts_with("CORRAL") {
            cmd.env_remove(k);
        }
    }
    cmd
}

fn run(cmd: &mut Command) -> (Output, String, String) {
    let out = cmd.output().expect("run corral");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn embedded_default_is_ok() {
    let (out, stdout, _) = run(corral().arg("check-config"));
    assert!(out.status.success());
    assert!(stdout.starts_with("OK"), "{stdout}");
    assert!(stdout.contains("127.0.0.1:7070"), "{stdout}");
    assert!(stdout.contains("127.0.0.1:8080"), "{stdout}");
}

#[test]
fn shipped_files_are_ok() {
    for env in ["dev", "prod", "test", "bench"] {
        let (out, stdout, stderr) =
            run(corral().args(["check-config", "--config", "config/sys.toml", "--env", env]));
        assert!(out.status.success(), "{env}: {stderr}");
        assert!(stdout.contains(&format!("config/{env}.toml")), "{stdout}");
    }
}

#[test]
fn print_shows_effective_config() {
    let (out, stdout, _) = run(corral()
        .args(["check-config", "--print"])
        .env("CORRAL__NODE__NAME", "from-env"));
    assert!(out.status.success());
    assert!(stdout.contains("\"name\": \"from-env\""), "{stdout}");
    assert!(stdout.contains("CORRAL__NODE__NAME"), "{stdout}");
}

#[test]
fn bad_file_exits_1_naming_key_and_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "bad.toml",
        "[[listener]]\nname = \"rpc\"\nmax_connections = 0\n",
    );
    let (out, stdout, stderr) = run(corral().arg("check-config").arg("--config").arg(&path));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("listener[0].max_connections"), "{stderr}");
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
}

#[test]
fn unknown_key_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "bad.toml", "[rpc]\nmax_frame_byte = 10\n");
    let (out, _, stderr) = run(corral().arg("check-config").arg("-c").arg(&path));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("rpc.max_frame_byte"), "{stderr}");
    assert!(stderr.contains("unknown field"), "{stderr}");
}

#[test]
fn bad_env_var_exits_1_naming_it() {
    let (out, _, stderr) = run(corral()
        .arg("check-config")
        .env("CORRAL__RPC__MAX_FRAME_BYTES", "huge"));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("rpc.max_frame_bytes"), "{stderr}");
    assert!(
        stderr.contains("environment variable CORRAL__RPC__MAX_FRAME_BYTES"),
        "{stderr}"
    );
}

#[test]
fn missing_file_exits_1() {
    let (out, _, stderr) = run(corral().args(["check-config", "--config", "/nonexistent/x.toml"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("/nonexistent/x.toml"), "{stderr}");
}

#[test]
fn serve_with_bad_config_exits_1() {
    let (out, _, stderr) = run(corral().arg("serve").env("CORRAL__LOG__FORMAT", "xml"));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("log.format"), "{stderr}");
}
