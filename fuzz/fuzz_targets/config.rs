//! The config loader: the input as a TOML file given to `Config::load`,
//! which refuses or accepts it, never panics.
#![no_main]

use std::sync::OnceLock;

use corral::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    static PATH: OnceLock<std::path::PathBuf> = OnceLock::new();
    let path = PATH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("corral-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        dir.join("fuzz.toml")
    });
    if std::fs::write(path, data).is_ok() {
        let _ = Config::load_with_vars(Some(path), None, std::iter::empty());
    }
});
