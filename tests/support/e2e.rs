//! [`ready`]: whether the headless Chromium tests can run here.

use std::path::Path;

/// `Ok` when node, e2e/node_modules (playwright-core) and /usr/bin/chromium
/// are all there (scripts/setup installs them); else what is missing.
pub(crate) fn ready() -> Result<(), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if !root.join("e2e/node_modules/playwright-core").is_dir() {
        return Err("e2e/node_modules is missing (run scripts/setup)".into());
    }
    if !Path::new("/usr/bin/chromium").exists() {
        return Err("/usr/bin/chromium is missing (run scripts/setup)".into());
    }
    match std::process::Command::new("node").arg("--version").output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => Err("node is missing".into()),
    }
}
