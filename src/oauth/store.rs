//! Where an account's OAuth2 tokens live between runs: a file only its
//! owner can read, or a command of the user's (a keyring). Never the
//! SQLite state: that file is copied around for support and holds only
//! what was copied where.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::endpoint::Secret;
use crate::error::{Error, Result};

/// The refresh token and the last access token with its lifetime: enough
/// to skip the token endpoint while the access token is still good.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub refresh_token: Secret,
    pub access_token: Option<Secret>,
    /// Unix seconds when the access token expires, if the provider said.
    pub expires_at: Option<i64>,
    /// Unix seconds when the access token was obtained.
    pub obtained_at: i64,
}

// By hand: only whether tokens are there, never their values.
impl std::fmt::Debug for TokenRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRecord")
            .field("access_token", &self.access_token.is_some())
            .field("expires_at", &self.expires_at)
            .field("obtained_at", &self.obtained_at)
            .finish_non_exhaustive()
    }
}

/// Who a stored token is for; written next to it so a person looking at
/// the file (or the keyring entry) knows what it is.
#[derive(Debug, Clone)]
pub struct Owner {
    pub user: String,
    pub client_id: String,
    pub token_url: String,
}

impl TokenRecord {
    /// The access token when it is still good at `now`: before its expiry
    /// less a margin of a quarter of its lifetime, at most 60 s (so a
    /// connection opened now is not refused a moment later). A token
    /// whose lifetime is unknown is good until a server refuses it.
    pub fn fresh_access(&self, now: i64) -> Option<&Secret> {
        let token = self.access_token.as_ref()?;
        match self.expires_at {
            None => Some(token),
            Some(exp) => {
                let margin = ((exp - self.obtained_at) / 4).clamp(0, 60);
                (now < exp - margin).then_some(token)
            }
        }
    }

    /// The stored form: one line of JSON.
    pub fn to_text(&self, owner: &Owner) -> String {
        json!({
            "version": 1,
            "user": owner.user,
            "client_id": owner.client_id,
            "token_url": owner.token_url,
            "refresh_token": self.refresh_token.expose(),
            "access_token": self.access_token.as_ref().map(|s| s.expose()),
            "expires_at": self.expires_at,
            "obtained_at": self.obtained_at,
        })
        .to_string()
    }

    /// Reads the stored form, or a bare refresh token (to import one
    /// obtained elsewhere). The error never quotes the text.
    pub fn from_text(text: &str) -> std::result::Result<TokenRecord, String> {
        let t = text.trim();
        if !t.starts_with('{') {
            if t.is_empty() || t.contains(char::is_whitespace) {
                return Err("neither the stored JSON nor a refresh token".into());
            }
            return Ok(TokenRecord {
                refresh_token: Secret::new(t),
                access_token: None,
                expires_at: None,
                obtained_at: 0,
            });
        }
        let v: Value = serde_json::from_str(t).map_err(|_| "not valid JSON".to_string())?;
        let s = |k: &str| v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
        let refresh_token = s("refresh_token")
            .map(Secret::new)
            .ok_or("no refresh_token in it")?;
        Ok(TokenRecord {
            refresh_token,
            access_token: s("access_token").map(Secret::new),
            expires_at: v.get("expires_at").and_then(Value::as_i64),
            obtained_at: v.get("obtained_at").and_then(Value::as_i64).unwrap_or(0),
        })
    }
}

/// Where one account's tokens are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenStore {
    /// `<state dir>/tokens/<user>-<hash>.json`, mode 0600 in a 0700 directory.
    File(PathBuf),
    /// `token_store_command`: run as `sh -c 'CMD "$@"' sh get` (prints
    /// what was put, or nothing) and `... put` (the text on stdin).
    Command(String),
}

impl TokenStore {
    /// The default file for a user of an OAuth2 client at a token endpoint:
    /// one grant, whichever accounts (IMAP, POP3) use it. The name keeps
    /// the user readable and a hash of all three unique.
    pub fn default_file(dir: &Path, owner: &Owner) -> TokenStore {
        let key = format!("{}\n{}\n{}", owner.token_url, owner.client_id, owner.user);
        let hash: String = crate::net::sha256(key.as_bytes())[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let readable: String = owner
            .user
            .chars()
            .take(64)
            .map(|c| {
                if c.is_ascii_alphanumeric() || "@._+-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let readable = readable.trim_start_matches('.');
        TokenStore::File(dir.join(format!("{readable}-{hash}.json")))
    }

    /// Names the store in messages (a path, or the command's name).
    pub fn describe(&self) -> String {
        match self {
            TokenStore::File(p) => p.display().to_string(),
            TokenStore::Command(_) => "token_store_command".into(),
        }
    }

    /// The stored tokens, `None` when nothing is stored yet. `who` names
    /// the account in messages.
    pub async fn load(&self, who: &str) -> Result<Option<TokenRecord>> {
        let text = match self {
            TokenStore::File(p) => match std::fs::read_to_string(p) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(Error::io(p, e)),
            },
            TokenStore::Command(c) => {
                super::command::run(c, &["get"], None, who, "token_store_command get").await?
            }
        };
        if text.trim().is_empty() {
            return Ok(None);
        }
        TokenRecord::from_text(&text).map(Some).map_err(|m| {
            Error::Usage(format!(
                "{who}: the stored OAuth2 token ({}) is unreadable: {m}; run `mailferry login {who}`",
                self.describe()
            ))
        })
    }

    /// Waits (30 s at most, then goes on without it) for the right to
    /// refresh: an exclusive `flock` on `<file>.lock` beside a token file,
    /// held until the guard drops; nothing for a command store, whose
    /// keyring is the user's to serialise.
    pub async fn refresh_lock(&self) -> Result<Option<std::fs::File>> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let TokenStore::File(p) = self else {
            return Ok(None);
        };
        let path = p.with_extension("lock");
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| Error::io(dir, e))?;
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Some(file)),
                Err(std::fs::TryLockError::WouldBlock)
                    if tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
            }
        }
    }

    /// Replaces the stored tokens: for a file, atomically (a crash leaves
    /// the old or the new one, never half of either).
    pub async fn save(&self, rec: &TokenRecord, owner: &Owner, who: &str) -> Result<()> {
        let text = rec.to_text(owner);
        match self {
            TokenStore::File(p) => write_private(p, text.as_bytes()).map_err(|e| Error::io(p, e)),
            TokenStore::Command(c) => {
                super::command::run(c, &["put"], Some(text), who, "token_store_command put")
                    .await
                    .map(drop)
            }
        }
    }
}

/// Writes `data` to `path` readable by its owner only: the directory made
/// 0700, a temporary file created 0600 and fsynced, renamed over `path`,
/// and the directory fsynced.
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> Owner {
        Owner {
            user: "alice@example.com".into(),
            client_id: "cid".into(),
            token_url: "https://t.example/token".into(),
        }
    }

    fn rec() -> TokenRecord {
        TokenRecord {
            refresh_token: Secret::new("rt-1"),
            access_token: Some(Secret::new("at-1")),
            expires_at: Some(10_003_600),
            obtained_at: 10_000_000,
        }
    }

    #[test]
    fn freshness_keeps_a_margin_of_a_quarter_at_most_a_minute() {
        let r = rec();
        assert!(r.fresh_access(10_003_600 - 61).is_some());
        assert!(r.fresh_access(10_003_600 - 60).is_none());
        let short = TokenRecord {
            expires_at: Some(104),
            obtained_at: 100,
            ..rec()
        };
        assert!(short.fresh_access(102).is_some());
        assert!(short.fresh_access(103).is_none());
        let unknown = TokenRecord {
            expires_at: None,
            ..rec()
        };
        assert!(unknown.fresh_access(i64::MAX).is_some());
    }

    #[test]
    fn text_round_trip_and_bare_refresh_token() {
        let r = rec();
        let text = r.to_text(&owner());
        assert!(!text.contains('\n'));
        assert_eq!(TokenRecord::from_text(&text).unwrap(), r);
        let bare = TokenRecord::from_text("  1//0gAbC-dEf\n").unwrap();
        assert_eq!(bare.refresh_token.expose(), "1//0gAbC-dEf");
        assert!(bare.access_token.is_none());
        for bad in ["", "two words", "{\"access_token\":\"x\"}", "{nope"] {
            let e = TokenRecord::from_text(bad).unwrap_err();
            assert!(!e.contains("nope") && !e.contains("words"), "{e}");
        }
        assert!(!format!("{r:?}").contains("rt-1"));
    }

    #[tokio::test]
    async fn file_store_is_private_and_replaced_atomically() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let store = TokenStore::default_file(&d.path().join("tokens"), &owner());
        let TokenStore::File(p) = &store else {
            panic!()
        };
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("alice@example.com-") && name.ends_with(".json"),
            "{name}"
        );
        assert_eq!(store.load("t").await.unwrap(), None);
        store.save(&rec(), &owner(), "t").await.unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(p), 0o600);
        assert_eq!(mode(p.parent().unwrap()), 0o700);
        let r2 = TokenRecord {
            refresh_token: Secret::new("rt-2"),
            ..rec()
        };
        store.save(&r2, &owner(), "t").await.unwrap();
        assert_eq!(store.load("t").await.unwrap(), Some(r2));
        let left: Vec<_> = std::fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file left behind");
        // Another client id or user is another file.
        let other = TokenStore::default_file(
            &d.path().join("tokens"),
            &Owner {
                client_id: "other".into(),
                ..owner()
            },
        );
        assert_ne!(other, store);
    }

    #[tokio::test]
    async fn the_refresh_lock_is_exclusive() {
        let d = tempfile::tempdir().unwrap();
        let store = TokenStore::default_file(&d.path().join("tokens"), &owner());
        let held = store
            .refresh_lock()
            .await
            .unwrap()
            .expect("a file store locks");
        let waiting =
            tokio::time::timeout(std::time::Duration::from_millis(300), store.refresh_lock()).await;
        assert!(waiting.is_err(), "a second holder got the lock");
        drop(held);
        assert!(store.refresh_lock().await.unwrap().is_some());
        assert!(
            TokenStore::Command("x".into())
                .refresh_lock()
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn command_store_gets_and_puts_through_the_argument() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("kept");
        let script = d.path().join("store.sh");
        std::fs::write(
            &script,
            format!(
                "case \"$1\" in get) cat {0} 2>/dev/null || true ;; put) cat > {0} ;; *) exit 9 ;; esac\n\
                 [ \"$MAILFERRY_ACCOUNT\" = work ] || exit 8\n",
                f.display()
            ),
        )
        .unwrap();
        let store = TokenStore::Command(format!("sh {}", script.display()));
        assert_eq!(store.load("work").await.unwrap(), None);
        store.save(&rec(), &owner(), "work").await.unwrap();
        assert_eq!(store.load("work").await.unwrap(), Some(rec()));
        let e = store.load("other").await.unwrap_err();
        assert!(e.to_string().contains("token_store_command get"), "{e}");
        assert!(!e.to_string().contains("rt-1"));
    }
}
