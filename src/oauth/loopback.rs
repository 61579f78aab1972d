//! The loopback-redirect flow (RFC 8252 §7.3 with PKCE, RFC 7636): the
//! user opens the provider's sign-in page in a browser, which comes back
//! to `http://127.0.0.1:PORT/` on this machine with a code; the code and
//! the PKCE verifier buy the tokens. Google's way in for mail (its device
//! flow refuses the mail scope).
//!
//! The listener takes only loopback connections, answers only the
//! redirect that carries this sign-in's `state`, and gives up after
//! [`WAIT`].

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::grant::{self, one_line};
use super::store::TokenRecord;
use super::{OAuthConfig, bearer, device, form};
use crate::error::{Error, Result};
use crate::interrupt::Interrupt;

/// How long to wait for the browser to come back.
pub const WAIT: Duration = Duration::from_secs(600);

/// How long one browser connection may take to send its request.
const REQUEST_LIMIT: Duration = Duration::from_secs(10);

/// Runs the flow: `show` gets the URL to open (a line for people, a JSON
/// event for scripts); on a terminal the browser is started too.
pub async fn sign_in(
    cfg: &OAuthConfig,
    show: &dyn Fn(&str, Value),
    interrupt: &Interrupt,
) -> Result<TokenRecord> {
    let Some(auth_url) = &cfg.auth_url else {
        return Err(Error::Usage(format!(
            "{}: no authorization endpoint: set oauth2_auth_url, or oauth2_flow = \"device\"",
            cfg.account
        )));
    };
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| Error::Usage(format!("cannot listen on 127.0.0.1 for the sign-in: {e}")))?;
    let port = listener
        .local_addr()
        .map_err(|e| Error::Usage(format!("cannot listen on 127.0.0.1: {e}")))?
        .port();
    let redirect_uri = format!("http://127.0.0.1:{port}/");
    let state = random(16);
    let verifier = random(32);
    let challenge = B64URL.encode(crate::net::sha256(verifier.as_bytes()));
    let scopes = cfg.scopes.join(" ");
    let mut pairs = vec![
        ("response_type", "code"),
        ("client_id", cfg.client_id.as_str()),
        ("redirect_uri", &redirect_uri),
        ("scope", &scopes),
        ("state", &state),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
        ("login_hint", &cfg.user),
    ];
    pairs.extend_from_slice(cfg.provider.auth_params());
    let sep = if auth_url.target.contains('?') {
        '&'
    } else {
        '?'
    };
    let url = format!(
        "{}://{}{}{sep}{}",
        if auth_url.tls { "https" } else { "http" },
        auth_url.host_header(),
        auth_url.target,
        form::encode(&pairs)
    );
    show(
        &format!(
            "To sign in {} as {}, open this URL in a browser on this machine:\n  {url}\n\
             (waiting for the browser to come back to {redirect_uri})",
            cfg.account, cfg.user
        ),
        json!({"event": "oauth_authorize", "account": cfg.account, "user": cfg.user,
               "url": url, "redirect_uri": redirect_uri}),
    );
    open_browser(&url);
    let code = wait_for_code(listener, &state, interrupt, &cfg.account).await?;
    let grant = [
        ("grant_type", "authorization_code"),
        ("code", code.expose()),
        ("redirect_uri", redirect_uri.as_str()),
        ("code_verifier", verifier.as_str()),
    ];
    match grant::request(cfg, &cfg.token_url, &grant).await? {
        Ok(g) => g
            .into_record(bearer::now(), None)
            .ok_or_else(|| device::no_refresh_token(cfg)),
        Err(r) => Err(grant::refusal_error(cfg, "the sign-in code", &r)),
    }
}

/// `n` random bytes, base64url: PKCE verifiers (32 bytes give RFC 7636's
/// 43 characters) and `state`.
fn random(n: usize) -> String {
    let mut b = vec![0u8; n];
    openssl::rand::rand_bytes(&mut b).expect("OpenSSL's random generator works");
    B64URL.encode(b)
}

/// Starts the desktop's browser on a terminal session; elsewhere (cron,
/// scripts, SSH without a display) the printed URL is the way.
fn open_browser(url: &str) {
    use std::io::IsTerminal;
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return;
    }
    let _ = std::process::Command::new("xdg-open")
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}

/// Accepts browser connections until one brings this sign-in's answer.
async fn wait_for_code(
    listener: TcpListener,
    state: &str,
    interrupt: &Interrupt,
    who: &str,
) -> Result<crate::endpoint::Secret> {
    let (tx, mut rx) = mpsc::channel(4);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        interrupt.check()?;
        tokio::select! {
            acc = listener.accept() => {
                if let Ok((sock, _)) = acc {
                    let (tx, state) = (tx.clone(), state.to_string());
                    tokio::spawn(async move {
                        if let Some(answer) = answer(sock, &state).await {
                            let _ = tx.send(answer).await;
                        }
                    });
                }
            }
            Some(answer) = rx.recv() => {
                return answer.map_err(|m| Error::OAuth { account: who.to_string(), msg: m });
            }
            _ = tokio::time::sleep_until(deadline) => {
                return Err(Error::OAuth {
                    account: who.to_string(),
                    msg: format!(
                        "the browser did not come back within {} minutes; run `mailferry login {who}` again",
                        WAIT.as_secs() / 60
                    ),
                });
            }
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// Reads one request and answers it; `Some` when it was this sign-in's
/// redirect (the code, or the provider's refusal).
async fn answer(
    mut sock: TcpStream,
    state: &str,
) -> Option<std::result::Result<crate::endpoint::Secret, String>> {
    let target = tokio::time::timeout(REQUEST_LIMIT, read_target(&mut sock))
        .await
        .ok()
        .flatten()?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let q = form::decode(query);
    let (status, page, outcome) = if path != "/" {
        ("404 Not Found", "Not found.".to_string(), None)
    } else if form::get(&q, "state") != Some(state) {
        (
            "400 Bad Request",
            "This answer does not belong to the sign-in mailferry is waiting for; it was ignored."
                .to_string(),
            None,
        )
    } else if let Some(code) = form::get(&q, "code").filter(|c| !c.is_empty()) {
        (
            "200 OK",
            "Signed in. You can close this tab and go back to mailferry.".to_string(),
            Some(Ok(crate::endpoint::Secret::new(code))),
        )
    } else {
        let err = one_line(form::get(&q, "error").unwrap_or("no code"), 60);
        let why = form::get(&q, "error_description")
            .map(|d| format!(": {}", one_line(d, 300)))
            .unwrap_or_default();
        let msg = format!("the sign-in was not completed ({err}{why})");
        (
            "200 OK",
            format!("Sign-in failed: {}", html_escape(&format!("{err}{why}"))),
            Some(Err(msg)),
        )
    };
    let body =
        format!("<!doctype html><meta charset=utf-8><title>mailferry</title><p>{page}</p>\n");
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(REQUEST_LIMIT, sock.write_all(resp.as_bytes())).await;
    outcome
}

/// The request target of a `GET` (head read up to 16 KiB).
async fn read_target(sock: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while memchr::memmem::find(&buf, b"\r\n\r\n").is_none() {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() > 16 * 1024 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = std::str::from_utf8(&buf[..memchr::memchr(b'\r', &buf)?]).ok()?;
    let mut parts = line.split(' ');
    match (parts.next(), parts.next()) {
        (Some("GET"), Some(target)) => Some(target.to_string()),
        _ => None,
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(port: u16, target: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    /// Strangers, a wrong state and a favicon request are answered and
    /// ignored; the redirect with the right state ends the wait.
    #[tokio::test]
    async fn only_the_matching_redirect_is_taken() {
        let l = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let port = l.local_addr().unwrap().port();
        let wait =
            tokio::spawn(
                async move { wait_for_code(l, "st8", &Interrupt::default(), "acct").await },
            );
        // A connection that never sends anything does not block others.
        let _idle = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        assert!(get(port, "/favicon.ico").await.starts_with("HTTP/1.1 404"));
        assert!(
            get(port, "/?code=evil&state=other")
                .await
                .starts_with("HTTP/1.1 400")
        );
        let ok = get(port, "/?code=4%2F0Ab&state=st8&scope=x").await;
        assert!(
            ok.starts_with("HTTP/1.1 200") && ok.contains("Signed in"),
            "{ok}"
        );
        assert_eq!(wait.await.unwrap().unwrap().expose(), "4/0Ab");

        let l = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let port = l.local_addr().unwrap().port();
        let wait =
            tokio::spawn(async move { wait_for_code(l, "s", &Interrupt::default(), "acct").await });
        let page = get(
            port,
            "/?error=access_denied&error_description=%3Cb%3Eno&state=s",
        )
        .await;
        assert!(page.contains("&lt;b&gt;no"), "{page}");
        let e = wait.await.unwrap().unwrap_err();
        assert!(e.to_string().contains("access_denied"), "{e}");
    }

    #[test]
    fn pkce_verifier_has_rfc_length() {
        assert_eq!(random(32).len(), 43);
        assert_ne!(random(16), random(16));
    }
}
