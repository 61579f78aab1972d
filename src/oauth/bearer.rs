//! One account's current access token, shared by every connection to it.
//!
//! A connection asks for a token before it authenticates. The first one
//! gets it from the store (or the provider, when the stored one is near
//! its end); the others wait on the same lock and get the same token. A
//! connection whose token a server refuses reports it back: the first such
//! report refreshes, later reports about the same (now replaced) token
//! just take the new one. So a pool of connections refreshes once, not
//! once per connection, and a run that outlives its token goes on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use super::OAuthConfig;
use super::store::TokenRecord;
use super::{command, grant};
use crate::endpoint::Secret;
use crate::error::{Error, Result};

/// Where an account's bearer tokens come from; cheap to clone, and every
/// clone (every [`crate::endpoint::ServerConfig`] of the account) shares
/// one current token.
#[derive(Clone)]
pub struct Bearer(Arc<Inner>);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.0.source {
            Source::Fixed(_) => "fixed",
            Source::Command(_) => "command",
            Source::Grant(_) => "grant",
        };
        write!(f, "Bearer({kind} for {})", self.0.who)
    }
}

struct Inner {
    /// The account in messages.
    who: String,
    source: Source,
    current: tokio::sync::Mutex<Current>,
}

enum Source {
    /// A token given as is: nothing to refresh it with.
    Fixed(Secret),
    /// `oauth2_token_command`: run again when its token is refused.
    Command(String),
    /// mailferry's own client: refresh token in the store.
    Grant(Box<OAuthConfig>),
}

#[derive(Default)]
struct Current {
    token: Option<Secret>,
    /// For a grant, what the token came with (expiry, refresh token).
    record: Option<TokenRecord>,
    /// Bumped each time the token is replaced.
    generation: u64,
}

/// The token one connection attempt uses, and which one it was, so that
/// a refusal replaces it only once.
#[derive(Debug, Clone)]
pub struct Token {
    pub secret: Secret,
    generation: u64,
}

/// Live handles by source, so that every job and connection of a process
/// that uses one account shares one token (entries die with their last
/// handle).
static LIVE: Mutex<Option<HashMap<String, Weak<Inner>>>> = Mutex::new(None);

fn shared(key: String, make: impl FnOnce() -> Inner) -> Bearer {
    let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let map = live.get_or_insert_with(HashMap::new);
    map.retain(|_, w| w.strong_count() > 0);
    if let Some(inner) = map.get(&key).and_then(Weak::upgrade) {
        return Bearer(inner);
    }
    let inner = Arc::new(make());
    map.insert(key, Arc::downgrade(&inner));
    Bearer(inner)
}

fn inner(who: &str, source: Source) -> Inner {
    Inner {
        who: who.to_string(),
        source,
        current: tokio::sync::Mutex::new(Current::default()),
    }
}

/// Unix seconds, from the system clock (never `MAILFERRY_NOW`: token
/// lifetimes are the provider's real time).
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Bearer {
    /// A token used as given (tests, a token from elsewhere).
    pub fn fixed(token: Secret) -> Bearer {
        Bearer(Arc::new(inner("token", Source::Fixed(token))))
    }

    /// `oauth2_token_command`: its first output line is the token; it is
    /// run again when a server refuses that token.
    pub fn command(cmd: &str, who: &str) -> Bearer {
        shared(format!("command\n{who}\n{cmd}"), || {
            inner(who, Source::Command(cmd.to_string()))
        })
    }

    /// mailferry's own OAuth2 client for a config account.
    pub fn grant(cfg: &OAuthConfig) -> Bearer {
        let key = match &cfg.store {
            super::TokenStore::File(p) => format!("file\n{}", p.display()),
            super::TokenStore::Command(c) => format!("store\n{}\n{c}", cfg.account),
        };
        shared(key, || {
            inner(&cfg.account, Source::Grant(Box::new(cfg.clone())))
        })
    }

    /// The token to authenticate with now: the current one while it is
    /// good, else a fresh one.
    pub async fn token(&self) -> Result<Token> {
        let mut cur = self.0.current.lock().await;
        match &self.0.source {
            Source::Fixed(s) => Ok(Token {
                secret: s.clone(),
                generation: 0,
            }),
            Source::Command(c) => {
                if cur.token.is_none() {
                    let t = self.run_command(c).await?;
                    cur.replace(t, None);
                }
                Ok(cur.handed_out())
            }
            Source::Grant(cfg) => {
                let now = now();
                if cur
                    .record
                    .as_ref()
                    .is_some_and(|r| r.fresh_access(now).is_some())
                {
                    return Ok(cur.handed_out());
                }
                self.obtain(cfg, &mut cur, None).await?;
                Ok(cur.handed_out())
            }
        }
    }

    /// A server refused `t`: the token to try once more with, or `None`
    /// when there is nothing newer to try (a fixed token; a command that
    /// prints the same token again).
    pub async fn refused(&self, t: &Token) -> Result<Option<Token>> {
        let mut cur = self.0.current.lock().await;
        if cur.generation != t.generation && cur.token.is_some() {
            // Another connection already replaced it.
            return Ok(Some(cur.handed_out()));
        }
        match &self.0.source {
            Source::Fixed(_) => Ok(None),
            Source::Command(c) => {
                let fresh = self.run_command(c).await?;
                if fresh == t.secret {
                    return Ok(None);
                }
                cur.replace(fresh, None);
                Ok(Some(cur.handed_out()))
            }
            Source::Grant(cfg) => {
                self.obtain(cfg, &mut cur, Some(&t.secret)).await?;
                Ok(Some(cur.handed_out()))
            }
        }
    }

    /// The account, for messages.
    pub fn who(&self) -> &str {
        &self.0.who
    }

    /// What to tell the user when even a fresh token is refused.
    pub fn refused_again(&self, server: &str, msg: &str) -> Error {
        let what = match &self.0.source {
            Source::Command(_) => "the token oauth2_token_command printed when run again",
            _ => "a freshly refreshed access token",
        };
        let login = match &self.0.source {
            Source::Grant(_) => format!(", or run `mailferry login {}`", self.0.who),
            _ => String::new(),
        };
        Error::OAuth {
            account: self.0.who.clone(),
            msg: format!(
                "{server} refused {what} too ({msg}); check the user name, that the mailbox allows IMAP/POP3 with OAuth2, and the scopes{login}"
            ),
        }
    }

    async fn run_command(&self, cmd: &str) -> Result<Secret> {
        let out = command::run(cmd, &[], None, &self.0.who, "oauth2_token_command").await?;
        Ok(Secret::new(command::first_line(
            &out,
            &self.0.who,
            "oauth2_token_command",
        )?))
    }

    async fn stored(&self, cfg: &OAuthConfig) -> Result<TokenRecord> {
        cfg.store
            .load(&cfg.account)
            .await?
            .ok_or_else(|| Error::OAuth {
                account: cfg.account.clone(),
                msg: format!(
                    "not signed in yet (no token in {}); run `mailferry login {}`",
                    cfg.store.describe(),
                    cfg.account
                ),
            })
    }

    /// Puts a good token into `cur`: the stored one when it is fresh and
    /// not the one just refused (`login` or another run may have stored
    /// it), else a refreshed one. The refresh happens under the store's
    /// lock, after a second look: two processes sharing the tokens then
    /// refresh once, and a provider with single-use refresh tokens does
    /// not see the spent one again.
    async fn obtain(
        &self,
        cfg: &OAuthConfig,
        cur: &mut Current,
        refused: Option<&Secret>,
    ) -> Result<()> {
        let usable = |r: &TokenRecord| {
            r.fresh_access(now())
                .filter(|at| Some(*at) != refused)
                .cloned()
        };
        let stored = self.stored(cfg).await?;
        if let Some(at) = usable(&stored) {
            cur.replace(at, Some(stored));
            return Ok(());
        }
        let _lock = cfg.store.refresh_lock().await?;
        let stored = self.stored(cfg).await?;
        if let Some(at) = usable(&stored) {
            cur.replace(at, Some(stored));
            return Ok(());
        }
        let new = grant::refresh(cfg, &stored, now()).await?;
        cfg.store.save(&new, &cfg.owner(), &cfg.account).await?;
        let at = new
            .access_token
            .clone()
            .expect("a refresh gives an access token");
        cur.replace(at, Some(new));
        Ok(())
    }
}

impl Current {
    fn replace(&mut self, token: Secret, record: Option<TokenRecord>) {
        self.token = Some(token);
        self.record = record;
        self.generation += 1;
    }

    fn handed_out(&self) -> Token {
        Token {
            secret: self.token.clone().expect("a token was just set"),
            generation: self.generation,
        }
    }
}

/// Runs `attempt` (connect and authenticate) with the current token; when
/// the server refuses it ([`Error::Auth`]), gets a newer one (shared by all
/// connections, see [`Bearer::refused`]) and runs `attempt` once more. A
/// refusal of the newer token too is [`Error::OAuth`] (exit 3).
pub async fn with_token<T>(b: &Bearer, attempt: impl AsyncFn(&Secret) -> Result<T>) -> Result<T> {
    let t = b.token().await?;
    match attempt(&t.secret).await {
        Err(Error::Auth { server, msg }) => match b.refused(&t).await? {
            None => Err(Error::Auth { server, msg }),
            Some(fresh) => match attempt(&fresh.secret).await {
                Err(Error::Auth { server, msg }) => Err(b.refused_again(&server, &msg)),
                r => r,
            },
        },
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_command_token_is_cached_and_rerun_only_when_refused() {
        let d = tempfile::tempdir().unwrap();
        let n = d.path().join("n");
        // Prints tok-1, tok-2, ... one per run.
        let cmd = format!(
            "n=$(cat {0} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {0}; echo tok-$n",
            n.display()
        );
        let b = Bearer::command(&cmd, "acct");
        let same = Bearer::command(&cmd, "acct");
        let t1 = b.token().await.unwrap();
        assert_eq!(t1.secret.expose(), "tok-1");
        assert_eq!(same.token().await.unwrap().secret.expose(), "tok-1");
        // Two connections refused with tok-1: the command runs once.
        let t2 = b.refused(&t1).await.unwrap().unwrap();
        let t2b = same.refused(&t1).await.unwrap().unwrap();
        assert_eq!(
            (t2.secret.expose(), t2b.secret.expose()),
            ("tok-2", "tok-2")
        );
        assert_eq!(std::fs::read_to_string(&n).unwrap().trim(), "2");
    }

    /// A token endpoint that answers every request with `at-N` (N counts
    /// the requests), valid for `expires_in` seconds.
    async fn token_endpoint(expires_in: i64) -> (super::super::HttpUrl, Arc<AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = super::super::HttpUrl::parse(&format!(
            "http://127.0.0.1:{}/token",
            l.local_addr().unwrap().port()
        ))
        .unwrap();
        let n = Arc::new(AtomicUsize::new(0));
        let count = n.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                // Requests here are small: the head and body come together.
                while !req.ends_with(b"refresh_token=rt") && !req.ends_with(b"&client_id=c") {
                    let k = s.read(&mut buf).await.unwrap();
                    assert!(k > 0, "{}", String::from_utf8_lossy(&req));
                    req.extend_from_slice(&buf[..k]);
                }
                let text = String::from_utf8_lossy(&req);
                assert!(
                    text.contains("grant_type=refresh_token&refresh_token=rt"),
                    "{text}"
                );
                let k = count.fetch_add(1, Ordering::SeqCst) + 1;
                let body = format!(
                    r#"{{"access_token":"at-{k}","token_type":"Bearer","expires_in":{expires_in}}}"#
                );
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                s.write_all(resp.as_bytes()).await.unwrap();
            }
        });
        (url, n)
    }

    fn grant_config(dir: &std::path::Path, token_url: super::super::HttpUrl) -> OAuthConfig {
        OAuthConfig {
            account: "acct".into(),
            provider: super::super::Provider::Custom,
            flow: super::super::Flow::Device,
            client_id: "c".into(),
            client_secret: None,
            scopes: vec!["s".into()],
            auth_url: None,
            token_url,
            device_url: None,
            user: "alice".into(),
            store: super::super::TokenStore::File(dir.join("t.json")),
            timeouts: crate::endpoint::Timeouts {
                connect: std::time::Duration::from_secs(5),
                command: std::time::Duration::from_secs(5),
            },
        }
    }

    #[tokio::test]
    async fn a_grant_refreshes_near_expiry_and_once_for_concurrent_refusals() {
        let d = tempfile::tempdir().unwrap();
        let (url, requests) = token_endpoint(3600).await;
        let cfg = grant_config(d.path(), url);
        let b = Bearer::grant(&cfg);
        let e = b.token().await.unwrap_err();
        assert!(e.to_string().contains("mailferry login acct"), "{e}");
        assert_eq!(e.exit_code(), crate::ExitCode::Auth);
        // Stored: a token with 30 s left of an hour, inside the margin.
        let t = now();
        let old = TokenRecord {
            refresh_token: Secret::new("rt"),
            access_token: Some(Secret::new("old")),
            expires_at: Some(t + 30),
            obtained_at: t - 3570,
        };
        cfg.store.save(&old, &cfg.owner(), "acct").await.unwrap();
        let t1 = b.token().await.unwrap();
        assert_eq!(t1.secret.expose(), "at-1");
        assert_eq!(
            Bearer::grant(&cfg).token().await.unwrap().secret.expose(),
            "at-1"
        );
        assert_eq!(
            requests.load(Ordering::SeqCst),
            1,
            "good for an hour: no second refresh"
        );
        // The refreshed token is stored (with the refresh token kept) for
        // the next run.
        let stored = cfg.store.load("acct").await.unwrap().unwrap();
        assert_eq!(stored.access_token.unwrap().expose(), "at-1");
        assert_eq!(stored.refresh_token.expose(), "rt");
        // Two connections refused at-1 at once: one refresh.
        let (a, c) = tokio::join!(b.refused(&t1), b.refused(&t1));
        let (a, c) = (a.unwrap().unwrap(), c.unwrap().unwrap());
        assert_eq!((a.secret.expose(), c.secret.expose()), ("at-2", "at-2"));
        assert_eq!(requests.load(Ordering::SeqCst), 2);

        // Two processes (two handles outside the registry) with a token
        // near its end: one refreshes under the file lock, the other
        // then finds the new token stored.
        cfg.store.save(&old, &cfg.owner(), "acct").await.unwrap();
        let own = || {
            Bearer(Arc::new(inner(
                "acct",
                Source::Grant(Box::new(cfg.clone())),
            )))
        };
        let (p1, p2) = (own(), own());
        let (a, c) = tokio::join!(p1.token(), p2.token());
        assert_eq!(a.unwrap().secret.expose(), c.unwrap().secret.expose());
        assert_eq!(requests.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn with_token_retries_once_with_a_new_token() {
        let d = tempfile::tempdir().unwrap();
        let n = d.path().join("n");
        let cmd = format!(
            "n=$(cat {0} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {0}; echo tok-$n",
            n.display()
        );
        let b = Bearer::command(&cmd, "retry");
        let refuse = |good: &'static str| {
            move |s: &Secret| {
                let ok = s.expose() == good;
                async move {
                    if ok {
                        Ok(())
                    } else {
                        Err(Error::Auth {
                            server: "s".into(),
                            msg: "NO [AUTHENTICATIONFAILED]".into(),
                        })
                    }
                }
            }
        };
        let f = refuse("tok-2");
        with_token(&b, async |s: &Secret| f(s).await).await.unwrap();
        let f = refuse("never");
        let e = with_token(&b, async |s: &Secret| f(s).await)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::OAuth { .. }), "{e}");
        assert_eq!(e.exit_code(), crate::ExitCode::Auth);
        // A fixed token has nothing newer: the server's refusal stands.
        let e = with_token(&Bearer::fixed(Secret::new("x")), async |s: &Secret| {
            f(s).await
        })
        .await
        .unwrap_err();
        assert!(matches!(e, Error::Auth { .. }), "{e}");
    }
}
