//! The chat's settings: the `[chat]` section.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize, Serializer};

/// `[chat]`: the chat services (`chat_sup`: `chat_store`, `chat_hub`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChatSettings {
    /// Run the chat subtree and register the chat services on RPC listeners.
    /// Default true.
    pub enabled: bool,
    /// Largest chat message text, in bytes (UTF-8). Default 4096.
    pub max_message_bytes: usize,
    /// Chat requests a connection may make per second, on average (a token
    /// bucket refilled at this rate); 0 disables the limit. Over it a request
    /// is answered OVERLOADED. Default 200.
    pub rate_per_second: f64,
    /// Size of each connection's token bucket: the longest burst of chat
    /// requests allowed. Default 400.
    pub rate_burst: f64,
    /// Most events a `history` reply holds (a larger `limit` is capped).
    /// Default 500.
    pub history_max_limit: usize,
    /// Events a `history` reply holds when the request gives no `limit`.
    /// Default 50.
    pub history_default_limit: usize,
    /// Most writes committed in one transaction (one fsync) by the store's
    /// writer. Default 1024.
    pub commit_batch_max: usize,
    /// Most entries in a `users` or `channels` reply, and the number given
    /// when the request has no `limit` (a larger `limit` is capped). A reply
    /// also stops short of the frame limit; `next` pages on. Default 1000.
    pub list_max_limit: usize,
    /// `[chat.users]`: user name -> token. A user listed here logs in only
    /// with `login {user, token}` carrying this token; other users log in
    /// without one, as before. The name is that user's alone: no channel
    /// may take it, even before the user's first login. Tokens are secrets:
    /// `check-config --print` shows them as `"***"`. Default: none.
    #[serde(serialize_with = "redacted")]
    pub users: BTreeMap<String, String>,
    /// Directory where the `store_backup` service writes the backups of the
    /// running node's store (`chat-<UTC time>-<n>.redb`, never overwriting
    /// a file); created when first needed. A relative path is taken from
    /// the node's working directory, as `node.data_dir` is. The service
    /// answers loopback callers only, and they never choose the path.
    /// Default: unset, meaning `<node.data_dir>/backups`.
    pub backup_dir: Option<PathBuf>,
}

/// Serializes the tokens of `[chat.users]` as `"***"`.
fn redacted<S: Serializer>(users: &BTreeMap<String, String>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(users.keys().map(|k| (k, "***")))
}

impl Default for ChatSettings {
    fn default() -> Self {
        ChatSettings {
            enabled: true,
            max_message_bytes: 4096,
            rate_per_second: 200.0,
            rate_burst: 400.0,
            history_max_limit: 500,
            history_default_limit: 50,
            commit_batch_max: 1024,
            list_max_limit: 1000,
            users: BTreeMap::new(),
            backup_dir: None,
        }
    }
}

impl ChatSettings {
    /// The directory backups go to: `backup_dir`, or `<data_dir>/backups`.
    pub fn backup_dir_in(&self, data_dir: &Path) -> PathBuf {
        self.backup_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("backups"))
    }

    /// Checks the values that types alone cannot; on failure, the key
    /// (relative to the section) and what is wrong with it.
    pub(crate) fn check(&self) -> Result<(), (String, String)> {
        fn bad(key: &str, message: &str) -> Result<(), (String, String)> {
            Err((key.to_string(), message.to_string()))
        }
        let c = self;
        if c.max_message_bytes == 0 {
            return bad("max_message_bytes", "must be at least 1");
        }
        if !(c.rate_per_second.is_finite() && c.rate_per_second >= 0.0) {
            return bad("rate_per_second", "must be a number >= 0");
        }
        if !(c.rate_burst.is_finite() && c.rate_burst >= 1.0) {
            return bad("rate_burst", "must be a number >= 1");
        }
        if c.history_max_limit == 0 {
            return bad("history_max_limit", "must be at least 1");
        }
        if c.history_default_limit == 0 || c.history_default_limit > c.history_max_limit {
            return bad(
                "history_default_limit",
                "must be between 1 and chat.history_max_limit",
            );
        }
        if c.commit_batch_max == 0 {
            return bad("commit_batch_max", "must be at least 1");
        }
        if c.list_max_limit == 0 {
            return bad("list_max_limit", "must be at least 1");
        }
        if c.backup_dir
            .as_ref()
            .is_some_and(|d| d.as_os_str().is_empty())
        {
            return bad(
                "backup_dir",
                "must not be empty (leave it out for <node.data_dir>/backups)",
            );
        }
        for (user, token) in &c.users {
            if let Err(e) = super::services::validate_name("user", user) {
                return Err((format!("users.{user}"), e.message.to_string()));
            }
            if token.is_empty() {
                return Err((
                    format!("users.{user}"),
                    "the token must not be empty".into(),
                ));
            }
        }
        Ok(())
    }
}
