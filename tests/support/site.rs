//! A docroot in a temporary directory, with a secret beside it and symlinks
//! in and out.

use std::path::PathBuf;

/// The text outside the docroot that must never be served.
pub(crate) const SECRET: &str = "TOP-SECRET-0xC0FFEE";

/// A docroot under a temporary directory.
pub(crate) struct Site {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) root: PathBuf,
    /// 1 KiB of text.
    pub(crate) small: Vec<u8>,
    /// 100 KiB of text.
    pub(crate) big: Vec<u8>,
}

impl Site {
    pub(crate) fn new() -> Site {
        let dir = tempfile::tempdir().expect("tempdir");
        let site = Site {
            root: dir.path().join("public"),
            dir,
            small: (0..1024)
                .map(|i| b"abcdefghijklmnopqrstuvwxyz\n"[i % 27])
                .collect(),
            big: (0..100 * 1024)
                .map(|i| format!("line {:06}\n", i / 12).into_bytes()[i % 12])
                .collect(),
        };
        let (top, root) = (site.dir.path(), &site.root);
        std::fs::create_dir_all(root.join("sub")).expect("mkdir");
        std::fs::write(top.join("secret.txt"), SECRET).expect("write");
        std::fs::write(root.join("small.txt"), &site.small).expect("write");
        std::fs::write(root.join("big.txt"), &site.big).expect("write");
        std::fs::write(root.join("index.html"), "<h1>home</h1>\n").expect("write");
        std::fs::write(root.join("sub/index.html"), "<h1>sub</h1>\n").expect("write");
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(top.join("secret.txt"), root.join("escape.txt"))
                .expect("symlink");
            std::os::unix::fs::symlink(top, root.join("updir")).expect("symlink");
            std::os::unix::fs::symlink(root.join("small.txt"), root.join("inside.txt"))
                .expect("symlink");
        }
        site
    }
}
