//! Loading configuration: embedded default, file, environment file,
//! environment variables and the command line's overrides, and the errors
//! for bad values.

use std::path::{Path, PathBuf};

use corral::config::{Config, ConfigError, LogFormat, Origin, Overrides, ProtocolKind};
use corral::transport::Transport;

fn no_vars() -> Vec<(String, String)> {
    Vec::new()
}

fn vars(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config file");
    path
}

fn repo_config(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config")
        .join(name)
}

/// Loads `text` as a base file and returns the error's message.
fn error_of(text: &str) -> (ConfigError, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "bad.toml", text);
    let err = Config::load_with_vars(Some(&path), None, no_vars()).expect_err("must be refused");
    (err, path)
}

fn assert_names(text: &str, key: &str) {
    let (err, path) = error_of(text);
    let msg = err.to_string();
    assert!(msg.contains(&format!("`{key}`")), "key {key} not in: {msg}");
    assert!(
        msg.contains(&path.display().to_string()),
        "file not in: {msg}"
    );
    assert_eq!(err.key(), Some(key));
}

#[test]
fn embedded_default() {
    let c = Config::load_with_vars(None, None, no_vars()).expect("valid");
    assert_eq!(c, Config::embedded_default());
    assert_eq!(c, Config::default());
    assert_eq!(c.node.name, "corral");
    assert_eq!(c.node.shutdown_timeout_ms, 10_000);
    assert_eq!(c.node.data_dir, PathBuf::from("./data"));
    assert_eq!(c.listeners.len(), 2);
    let rpc = &c.listeners[0];
    assert_eq!(
        (rpc.name.as_str(), rpc.transport, rpc.protocol, rpc.port),
        ("rpc", Transport::Tcp, ProtocolKind::Rpc, 7070)
    );
    assert_eq!(rpc.bind_address(), "127.0.0.1:7070");
    let http = &c.listeners[1];
    assert_eq!(
        (http.name.as_str(), http.protocol, http.port),
        ("http", ProtocolKind::Http, 8080)
    );
    assert_eq!(c.rpc.max_frame_bytes, 1_048_576);
    assert_eq!(c.rpc.max_in_flight, 64);
    assert_eq!(c.rpc.compute_max_n, 1_000_000_000);
    assert_eq!(c.http.max_header_bytes, 16_384);
    assert!(c.metrics.enabled);
    assert_eq!(c.log.level, "info");
    assert_eq!(c.log.format, LogFormat::Pretty);
}

#[test]
fn sys_toml_is_the_embedded_default() {
    let c = Config::load_with_vars(Some(&repo_config("sys.toml")), None, no_vars()).expect("ok");
    assert_eq!(c, Config::default());
}

#[test]
fn shipped_environments_are_valid() {
    for env in ["dev", "prod", "test", "bench"] {
        let c = Config::load_with_vars(Some(&repo_config("sys.toml")), Some(env), no_vars())
            .unwrap_or_else(|e| panic!("{env}: {e}"));
        assert_ne!(c, Config::default(), "{env} changes something");
    }
    let test = Config::load_with_vars(Some(&repo_config("sys.toml")), Some("test"), no_vars())
        .expect("ok");
    assert!(test.listeners.iter().all(|l| l.port == 0));
    let prod = Config::load_with_vars(Some(&repo_config("sys.toml")), Some("prod"), no_vars())
        .expect("ok");
    assert_eq!(prod.log.format, LogFormat::Json);
}

#[test]
fn partial_file_keeps_defaults() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "my.toml",
        "[rpc]\nmax_in_flight = 8\n[node]\nname = \"n1\"\n",
    );
    let c = Config::load_with_vars(Some(&path), None, no_vars()).expect("valid");
    assert_eq!(c.rpc.max_in_flight, 8);
    assert_eq!(c.rpc.max_frame_bytes, 1_048_576);
    assert_eq!(c.node.name, "n1");
    assert_eq!(c.listeners, Config::default().listeners);
}

#[test]
fn listener_defaults_follow_protocol() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "l.toml",
        "[[listener]]\nprotocol = \"http\"\n[[listener]]\nname = \"s\"\ntransport = \"sctp\"\nport = 7071\n",
    );
    let c = Config::load_with_vars(Some(&path), None, no_vars()).expect("valid");
    assert_eq!(c.listeners.len(), 2);
    assert_eq!(c.listeners[0].name, "http");
    assert_eq!(c.listeners[0].port, 8080);
    assert_eq!(c.listeners[0].max_connections, 10_000);
    assert_eq!(c.listeners[1].transport, Transport::Sctp);
    assert_eq!(c.listeners[1].protocol, ProtocolKind::Rpc);
}

#[test]
fn env_file_overrides_base() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = write(
        dir.path(),
        "sys.toml",
        "[node]\nname = \"base\"\nshutdown_timeout_ms = 1\n[log]\nlevel = \"info\"\n",
    );
    write(
        dir.path(),
        "stage.toml",
        "[node]\nname = \"stage\"\n[[listener]]\nname = \"only\"\nport = 0\n",
    );
    let c = Config::load_with_vars(Some(&base), Some("stage"), no_vars()).expect("valid");
    assert_eq!(c.node.name, "stage");
    assert_eq!(c.node.shutdown_timeout_ms, 1, "kept from the base");
    assert_eq!(c.listeners.len(), 1, "the list is replaced as a whole");
    assert_eq!(c.listeners[0].name, "only");
}

#[test]
fn missing_env_file_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = write(dir.path(), "sys.toml", "");
    let err = Config::load_with_vars(Some(&base), Some("nope"), no_vars()).expect_err("missing");
    assert!(matches!(err, ConfigError::Read { .. }), "{err}");
    assert!(err.to_string().contains("nope.toml"), "{err}");
    let err =
        Config::load_with_vars(Some(&base), Some("../x"), no_vars()).expect_err("bad env name");
    assert!(err.to_string().contains("--env"), "{err}");
}

#[test]
fn env_vars_override_both() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = write(dir.path(), "sys.toml", "[rpc]\nmax_frame_bytes = 1000\n");
    write(dir.path(), "dev.toml", "[rpc]\nmax_frame_bytes = 2000\n");
    let c = Config::load_with_vars(
        Some(&base),
        Some("dev"),
        vars(&[
            ("CORRAL__RPC__MAX_FRAME_BYTES", "65536"),
            ("CORRAL__NODE__NAME", "x"),
            ("CORRAL__HTTP__IDLE_TIMEOUT_MS", "0"),
            ("CORRAL__NODE__WORKER_THREADS", "3"),
        ]),
    )
    .expect("valid");
    assert_eq!(c.node.effective_worker_threads(), 3);
    assert_eq!(c.rpc.max_frame_bytes, 65536);
    assert_eq!(c.node.name, "x");
    assert_eq!(c.http.idle_timeout(), None);
}

#[test]
fn bad_env_var_names_the_variable() {
    let err = Config::load_with_vars(None, None, vars(&[("CORRAL__RPC__MAX_FRAME_BYTES", "big")]))
        .expect_err("bad");
    let msg = err.to_string();
    assert!(msg.contains("`rpc.max_frame_bytes`"), "{msg}");
    assert!(
        msg.contains("environment variable CORRAL__RPC__MAX_FRAME_BYTES"),
        "{msg}"
    );
    let err = Config::load_with_vars(None, None, vars(&[("CORRAL__NODE__COLOUR", "red")]))
        .expect_err("unknown key");
    assert!(
        err.to_string()
            .contains("environment variable CORRAL__NODE__COLOUR"),
        "{err}"
    );
}

#[test]
fn bad_values_name_key_and_file() {
    assert_names("[rpc]\nmax_frame_bytes = \"big\"\n", "rpc.max_frame_bytes");
    assert_names("[rpc]\nmax_in_flight = 0\n", "rpc.max_in_flight");
    assert_names(
        "[node]\nshutdown_timeout_ms = -1\n",
        "node.shutdown_timeout_ms",
    );
    assert_names("[node]\nworker_threads = 5000\n", "node.worker_threads");
    assert_names("[cache]\nrevalidate_ms = 3600001\n", "cache.revalidate_ms");
    assert_names(
        "[http]\nhibernate_after_ms = 5\n",
        "http.hibernate_after_ms",
    );
    assert_names(
        "[http]\nhibernate_after_ms = -1\n",
        "http.hibernate_after_ms",
    );
    assert_names("[node]\nworker_threads = -2\n", "node.worker_threads");
    assert_names("[metrics]\nenabled = \"maybe\"\n", "metrics.enabled");
    assert_names("[log]\nformat = \"xml\"\n", "log.format");
    assert_names("[log]\nlevel = \"[[\"\n", "log.level");
    assert_names(
        "[[listener]]\ntransport = \"udp\"\n",
        "listener[0].transport",
    );
    assert_names("[[listener]]\nprotocol = \"ftp\"\n", "listener[0].protocol");
    assert_names("[[listener]]\nport = 70000\n", "listener[0].port");
    assert_names("[[listener]]\nport = -1\n", "listener[0].port");
    assert_names(
        "[[listener]]\nname = \"a\"\n[[listener]]\nname = \"b\"\nport = 1\nmax_connections = 0\n",
        "listener[1].max_connections",
    );
    assert_names("[[listener]]\nbacklog = 0\n", "listener[0].backlog");
    assert_names(
        "[[listener]]\naddress = \"not an address\"\n",
        "listener[0].address",
    );
    assert_names(
        "[[listener]]\nname = \"a\"\nport = 1\n[[listener]]\nname = \"a\"\nport = 2\n",
        "listener[1].name",
    );
    assert_names(
        "[[listener]]\nname = \"a\"\nport = 1\n[[listener]]\nname = \"b\"\nport = 1\n",
        "listener[1].port",
    );
}

#[test]
fn unknown_keys_are_refused() {
    assert_names("[node]\nnmae = \"x\"\n", "node.nmae");
    assert_names("[[listener]]\nprot = 1\n", "listener[0].prot");
    assert_names("[rcp]\nmax_in_flight = 1\n", "rcp");
    assert_names("toplevel = 1\n", "toplevel");
}

#[test]
fn syntax_error_names_the_file() {
    let (err, path) = error_of("[rpc\n");
    assert!(matches!(err, ConfigError::Parse { .. }));
    assert!(err.to_string().contains(&path.display().to_string()));
}

#[test]
fn error_in_env_file_names_that_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = write(dir.path(), "sys.toml", "[rpc]\nmax_in_flight = 4\n");
    let dev = write(dir.path(), "dev.toml", "[rpc]\nmax_in_flight = 0\n");
    let err = Config::load_with_vars(Some(&base), Some("dev"), no_vars()).expect_err("bad");
    match &err {
        ConfigError::Invalid { key, origin, .. } => {
            assert_eq!(key, "rpc.max_in_flight");
            assert_eq!(origin, &Origin::File(dev.clone()));
        }
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn validate_checks_a_built_config() {
    let mut c = Config::default();
    assert!(c.validate().is_ok());
    c.listeners[1].name = "rpc".into();
    let err = c.validate().expect_err("duplicate");
    assert_eq!(err.key(), Some("listener[1].name"));
}

#[test]
fn chat_backup_dir_defaults_under_data_dir() {
    let c = Config::embedded_default();
    assert_eq!(c.chat.backup_dir, None);
    assert_eq!(
        c.chat.backup_dir_in(&c.node.data_dir),
        PathBuf::from("./data/backups")
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let base = write(
        dir.path(),
        "sys.toml",
        "[chat]\nbackup_dir = \"/srv/corral/backups\"\n",
    );
    let c = Config::load_with_vars(Some(&base), None, no_vars()).expect("valid");
    assert_eq!(
        c.chat.backup_dir_in(&c.node.data_dir),
        PathBuf::from("/srv/corral/backups")
    );
    assert_names("[chat]\nbackup_dir = \"\"\n", "chat.backup_dir");
}

fn flags(host: Option<&str>, port: Option<u16>, workers: Option<usize>) -> Overrides {
    Overrides {
        rpc_address: host.map(str::to_string),
        rpc_port: port,
        compute_workers: workers,
    }
}

#[test]
fn overrides_win_over_files_and_variables() {
    let c = Config::load_with_overrides(
        Some(&repo_config("sys.toml")),
        Some("test"),
        vars(&[("CORRAL__RPC__COMPUTE_WORKERS", "5")]),
        &flags(Some("0.0.0.0"), Some(7171), Some(3)),
    )
    .expect("valid");
    assert_eq!(c.rpc.compute_workers, 3);
    let rpc = &c.listeners[0];
    assert_eq!(
        (rpc.protocol, rpc.address.as_str(), rpc.port),
        (ProtocolKind::Rpc, "0.0.0.0", 7171)
    );
    // The HTTP listener is left alone.
    assert_eq!(
        (c.listeners[1].address.as_str(), c.listeners[1].port),
        ("127.0.0.1", 0)
    );
}

#[test]
fn overrides_set_the_first_rpc_listener_on_tcp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "many.toml",
        "[[listener]]\nname = \"web\"\nprotocol = \"http\"\n\
         [[listener]]\nname = \"sctp\"\ntransport = \"sctp\"\nport = 7072\n\
         [[listener]]\nname = \"rpc\"\nport = 7071\n\
         [[listener]]\nname = \"rpc2\"\nport = 7073\n",
    );
    let config = Config::load_with_vars(Some(&path), None, no_vars());
    if config.is_err() {
        // A build without SCTP refuses the file; nothing to check then.
        return;
    }
    assert_eq!(config.expect("valid").rpc_listener_index(), Some(2));
    let c =
        Config::load_with_overrides(Some(&path), None, no_vars(), &flags(None, Some(9000), None))
            .expect("valid");
    let ports: Vec<u16> = c.listeners.iter().map(|l| l.port).collect();
    assert_eq!(ports, [8080, 7072, 9000, 7073]);
    // Without a TCP one, the first RPC listener.
    let sctp_only = write(
        dir.path(),
        "sctp.toml",
        "[[listener]]\nname = \"sctp\"\ntransport = \"sctp\"\nport = 7072\n",
    );
    let c = Config::load_with_overrides(
        Some(&sctp_only),
        None,
        no_vars(),
        &flags(None, Some(9000), None),
    )
    .expect("valid");
    assert_eq!(c.listeners[0].port, 9000);
}

#[test]
fn bad_overrides_are_named_as_flags() {
    let refused = |o: Overrides, text: &str| {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(dir.path(), "c.toml", text);
        Config::load_with_overrides(Some(&path), None, no_vars(), &o).expect_err("refused")
    };
    let rpc_and_http =
        "[[listener]]\nport = 7070\n[[listener]]\nprotocol = \"http\"\nport = 8080\n";
    for (o, key, flag) in [
        (flags(None, Some(0), None), "listener[0].port", "--port"),
        (
            flags(None, None, Some(0)),
            "rpc.compute_workers",
            "--workers",
        ),
        (
            flags(None, None, Some(5000)),
            "rpc.compute_workers",
            "--workers",
        ),
        (
            flags(Some("no such host"), None, None),
            "listener[0].address",
            "--host",
        ),
        // A port the HTTP listener has: the flag made the conflict.
        (flags(None, Some(8080), None), "listener[1].port", "--port"),
    ] {
        let e = refused(o, rpc_and_http);
        assert_eq!(e.key(), Some(key), "{e}");
        assert!(
            e.to_string().contains(&format!("command-line flag {flag}")),
            "{e}"
        );
    }
    let http_only = "[[listener]]\nprotocol = \"http\"\n";
    let e = refused(flags(None, Some(7000), None), http_only);
    assert!(
        e.to_string().contains("--port") && e.to_string().contains("rpc"),
        "{e}"
    );
    // The files' own errors keep naming the file.
    let clash = "[[listener]]\nport = 7070\n[[listener]]\nprotocol = \"http\"\nport = 7070\n";
    let e = refused(flags(None, None, Some(2)), clash);
    assert!(e.to_string().contains("c.toml"), "{e}");
}
