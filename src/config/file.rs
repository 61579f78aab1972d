//! The TOML config file (SPEC §5): accounts and jobs. Every error names the
//! file, the line and the key; unknown keys are errors, not ignored typos.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::error::{Error, Result};

/// The file as written, before names are resolved.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// State database path (`~` expanded).
    pub state: Option<Spanned<String>>,
    /// Default connections per server.
    pub connections: Option<u16>,
    /// Default response timeout, seconds.
    pub timeout: Option<u64>,
    #[serde(default)]
    pub account: BTreeMap<String, Spanned<RawAccount>>,
    #[serde(default)]
    pub job: Vec<Spanned<RawJob>>,
}

/// `[account.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccount {
    /// The endpoint; may be left out when `provider` and `user` say it.
    pub url: Option<Spanned<String>>,
    /// A provider profile (`src/provider.rs`): its servers when there is
    /// no `url`, and its limits and quirks either way.
    pub provider: Option<Spanned<String>>,
    /// The user name with `provider` and no `url`.
    pub user: Option<Spanned<String>>,
    /// `"imap"` (default) or `"pop3"`, with `provider` and no `url`.
    pub protocol: Option<Spanned<String>>,
    /// Bytes downloaded in any 24 hours at most (`"2500MB"`; `"none"`
    /// lifts the profile's).
    pub daily_download: Option<Spanned<String>>,
    /// Bytes uploaded (APPEND) in any 24 hours at most.
    pub daily_upload: Option<Spanned<String>>,
    pub password: Option<Spanned<String>>,
    pub password_command: Option<String>,
    pub password_file: Option<String>,
    pub password_env: Option<String>,
    pub oauth2_token_command: Option<String>,
    /// `"password"` (default) or `"oauth2"` (mailferry's own OAuth2
    /// client with the `oauth2_*` keys, or `oauth2_token_command`).
    pub auth: Option<Spanned<String>>,
    /// `"google"`, `"microsoft"` or `"custom"`.
    pub oauth2_provider: Option<Spanned<String>>,
    pub oauth2_client_id: Option<Spanned<String>>,
    pub oauth2_client_secret: Option<Spanned<String>>,
    pub oauth2_client_secret_command: Option<String>,
    pub oauth2_scopes: Option<Vec<String>>,
    /// Microsoft: `common` (default), `organizations`, `consumers` or a tenant id.
    pub oauth2_tenant: Option<Spanned<String>>,
    pub oauth2_auth_url: Option<Spanned<String>>,
    pub oauth2_token_url: Option<Spanned<String>>,
    pub oauth2_device_url: Option<Spanned<String>>,
    /// `"device"` or `"loopback"` (default: the provider's).
    pub oauth2_flow: Option<Spanned<String>>,
    /// Keeps the refresh token with a command (`CMD get` / `CMD put`)
    /// instead of a file in the state directory.
    pub token_store_command: Option<String>,
    pub ca_file: Option<String>,
    pub tls_fingerprint: Option<Spanned<String>>,
    /// `"required"` (default) or `"none"` (plain text, like --insecure-plaintext).
    pub tls: Option<Spanned<String>>,
    pub connections: Option<u16>,
}

/// `[[job]]`: a command with its arguments.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJob {
    pub name: Spanned<String>,
    pub command: Spanned<String>,
    pub from: Option<Spanned<String>>,
    pub to: Option<Spanned<String>>,
    pub on: Option<Spanned<String>>,
    #[serde(default)]
    pub folders: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    pub max_size: Option<Spanned<String>>,
    pub since: Option<Spanned<String>>,
    pub delete_after: Option<u32>,
    #[serde(default)]
    pub delete_after_fetch: bool,
    #[serde(default)]
    pub allow_expunge_all: bool,
    #[serde(default)]
    pub map: Vec<String>,
    pub max_rate: Option<f64>,
    pub older_than: Option<u32>,
    pub keep_last: Option<u64>,
    pub max_total: Option<Spanned<String>>,
    pub larger_than: Option<Spanned<String>>,
    pub only_if_stored_in: Option<Spanned<String>>,
    #[serde(default)]
    pub to_trash: bool,
    pub max_delete: Option<u64>,
    #[serde(default)]
    pub only_unread: bool,
    #[serde(default)]
    pub include_flagged: bool,
    /// `false` turns off the default proof in the fetch/push job's target.
    pub only_if_stored: Option<bool>,
    /// Per-folder prune rules: the first whose glob matches replaces the
    /// job's rules for that folder.
    #[serde(default)]
    pub rules: Vec<RawFolderRules>,
    #[serde(default)]
    pub deep: bool,
}

/// `[[job.rules]]`: prune rules for the folders matching `folder`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFolderRules {
    pub folder: String,
    pub older_than: Option<u32>,
    pub keep_last: Option<u64>,
    pub max_total: Option<Spanned<String>>,
    pub larger_than: Option<Spanned<String>>,
    #[serde(default)]
    pub only_unread: bool,
}

/// A parsed config file with its text, so later checks can name lines.
#[derive(Debug, Default)]
pub struct ConfigFile {
    pub path: PathBuf,
    pub text: String,
    pub raw: RawConfig,
}

impl ConfigFile {
    /// Reads and parses `path`. Refuses a plain `password` in a file that
    /// others can read.
    pub fn load(path: &Path) -> Result<ConfigFile> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            file: path.display().to_string(),
            line: None,
            msg: format!("cannot read: {e}"),
        })?;
        let raw: RawConfig = toml::from_str(&text).map_err(|e| {
            let line = e.span().map(|s| line_of(&text, s.start));
            Error::Config {
                file: path.display().to_string(),
                line,
                msg: e.message().trim().to_string(),
            }
        })?;
        let cf = ConfigFile {
            path: path.to_path_buf(),
            text,
            raw,
        };
        cf.check_permissions()?;
        Ok(cf)
    }

    /// An error at a span of this file.
    pub fn error_at(&self, span: std::ops::Range<usize>, msg: impl Into<String>) -> Error {
        Error::Config {
            file: self.path.display().to_string(),
            line: Some(line_of(&self.text, span.start)),
            msg: msg.into(),
        }
    }

    fn check_permissions(&self) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        // A client secret is a password too, whatever providers say.
        let plain = |a: &RawAccount| {
            a.password.as_ref().map(|p| ("password", p.span())).or(a
                .oauth2_client_secret
                .as_ref()
                .map(|p| ("oauth2_client_secret", p.span())))
        };
        let with_password = self
            .raw
            .account
            .iter()
            .find_map(|(n, a)| plain(a.get_ref()).map(|p| (n, a, p)));
        if let Some((name, _, (key, span))) = with_password {
            let mode = std::fs::metadata(&self.path)
                .map_err(|e| Error::io(&self.path, e))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(self.error_at(
                    span,
                    format!(
                        "account.{name}.{key}: a plain secret in a file others can read (mode {:o}); run chmod 600 {} or use {key}_command",
                        mode & 0o777,
                        self.path.display()
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

/// Expands a leading `~/` to $HOME.
pub fn expand_tilde(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    }
}
