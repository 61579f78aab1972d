//! Requests to the token endpoint (RFC 6749 §4.1.3, §6; RFC 8628 §3.4):
//! exchange a code, poll for a device grant, refresh. Turns the
//! endpoint's answers into a [`TokenRecord`] or a refusal with a message
//! that says what to do.

use serde_json::{Map, Value};

use super::OAuthConfig;
use super::form::{self, HttpUrl};
use super::http;
use super::store::TokenRecord;
use crate::endpoint::{Secret, TlsOptions};
use crate::error::{Error, Result};

/// An OAuth2 error answer (`{"error": "invalid_grant", ...}`).
#[derive(Debug, Clone)]
pub struct Refusal {
    pub status: u16,
    /// The RFC 6749 §5.2 code: `invalid_grant`, `authorization_pending`…
    pub error: String,
    /// The provider's explanation, shortened to one line.
    pub description: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.description.is_empty() {
            write!(f, "{}", self.error)
        } else {
            write!(f, "{}: {}", self.error, self.description)
        }
    }
}

/// A successful token answer.
#[derive(Debug)]
pub struct Granted {
    pub access_token: Secret,
    pub refresh_token: Option<Secret>,
    pub expires_in: Option<i64>,
}

impl Granted {
    /// The record to store at `now`; a provider that sends no new refresh
    /// token (Google, usually) keeps the one we had.
    pub fn into_record(self, now: i64, had: Option<&Secret>) -> Option<TokenRecord> {
        Some(TokenRecord {
            refresh_token: self.refresh_token.or_else(|| had.cloned())?,
            access_token: Some(self.access_token),
            expires_at: self.expires_in.map(|s| now + s.max(0)),
            obtained_at: now,
        })
    }
}

/// POSTs a grant to the token endpoint with the client's credentials.
/// `Err` for trouble reaching it (exit 4, worth a retry), `Ok(Err)` for an
/// OAuth2 refusal, which the caller explains.
pub async fn request(
    cfg: &OAuthConfig,
    url: &HttpUrl,
    grant: &[(&str, &str)],
) -> Result<std::result::Result<Granted, Refusal>> {
    let secret = match &cfg.client_secret {
        Some(s) => Some(s.resolve(&cfg.account).await?),
        None => None,
    };
    let mut pairs: Vec<(&str, &str)> = grant.to_vec();
    pairs.push(("client_id", &cfg.client_id));
    if let Some(s) = &secret {
        pairs.push(("client_secret", s.expose()));
    }
    let resp = http::post_form(
        url,
        &form::encode(&pairs),
        &TlsOptions::default(),
        cfg.timeouts,
    )
    .await?;
    parse(url, &resp)
}

/// Reads a token endpoint's answer (split out to be tested without one).
pub fn parse(
    url: &HttpUrl,
    resp: &http::Response,
) -> Result<std::result::Result<Granted, Refusal>> {
    let server = url.server();
    let json = resp.json();
    if !(200..300).contains(&resp.status) {
        return match json
            .as_ref()
            .and_then(|j| j.get("error"))
            .and_then(Value::as_str)
        {
            Some(code) if resp.status < 500 => Ok(Err(Refusal {
                status: resp.status,
                error: one_line(code, 60),
                description: json
                    .as_ref()
                    .and_then(|j| j.get("error_description"))
                    .and_then(Value::as_str)
                    .map(|d| one_line(d, 300))
                    .unwrap_or_default(),
            })),
            _ => Err(Error::connect(
                &server,
                format!(
                    "the OAuth2 endpoint {} answered HTTP {}{}; try again later",
                    url.target.split('?').next().unwrap_or(""),
                    resp.status,
                    if json.is_none() { " (not JSON)" } else { "" }
                ),
            )),
        };
    }
    let Some(j) = json else {
        return Err(Error::protocol(
            &server,
            format!(
                "the token endpoint's answer is not a JSON object (Content-Type {:?})",
                resp.content_type
            ),
        ));
    };
    granted(&j).map(Ok).map_err(|m| Error::protocol(&server, m))
}

fn granted(j: &Map<String, Value>) -> std::result::Result<Granted, String> {
    let access = j
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or("the token endpoint's answer has no access_token")?;
    if let Some(tt) = j.get("token_type").and_then(Value::as_str)
        && !tt.eq_ignore_ascii_case("bearer")
    {
        return Err(format!(
            "the token endpoint issued a {:?} token; mail servers take Bearer tokens",
            one_line(tt, 20)
        ));
    }
    // A number, or a string of digits from some providers.
    let expires_in = match j.get("expires_in") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    Ok(Granted {
        access_token: Secret::new(access),
        refresh_token: j
            .get("refresh_token")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(Secret::new),
        expires_in,
    })
}

/// Text from the provider made safe for one line of a message.
pub fn one_line(s: &str, max: usize) -> String {
    let first = s.lines().next().unwrap_or("");
    let mut out: String = first
        .chars()
        .filter(|c| !c.is_control())
        .take(max)
        .collect();
    if first.chars().count() > max {
        out.push('…');
    }
    out
}

/// A new access token from the refresh token. A refused refresh token is
/// [`Error::OAuth`] (exit 3) saying to sign in again.
pub async fn refresh(cfg: &OAuthConfig, had: &TokenRecord, now: i64) -> Result<TokenRecord> {
    let scopes = cfg.scopes.join(" ");
    let mut grant = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", had.refresh_token.expose()),
    ];
    if cfg.provider.scope_on_refresh() && !scopes.is_empty() {
        grant.push(("scope", &scopes));
    }
    match request(cfg, &cfg.token_url, &grant).await? {
        Ok(g) => Ok(g
            .into_record(now, Some(&had.refresh_token))
            .expect("the old refresh token is kept")),
        Err(r) => Err(refusal_error(cfg, "the refresh token", &r)),
    }
}

/// The error for a refusal, with what to do about it.
pub fn refusal_error(cfg: &OAuthConfig, doing: &str, r: &Refusal) -> Error {
    let login = format!("run `mailferry login {}`", cfg.account);
    let hint = match r.error.as_str() {
        "invalid_grant" => format!(
            "the grant expired or was revoked (or the password changed); {login} to sign in again"
        ),
        "invalid_client" | "unauthorized_client" => {
            "check oauth2_client_id and oauth2_client_secret (mailferry has no client id of its own: register yours, see the README)".into()
        }
        "invalid_scope" => format!("check oauth2_scopes, then {login}"),
        _ => login,
    };
    Error::OAuth {
        account: cfg.account.clone(),
        msg: format!(
            "the token endpoint {} refused {doing} ({r}); {hint}",
            cfg.token_url.server()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: &str) -> http::Response {
        http::Response {
            status,
            content_type: "application/json".into(),
            body: body.as_bytes().to_vec(),
        }
    }

    fn url() -> HttpUrl {
        HttpUrl::parse("https://login.example/token").unwrap()
    }

    #[test]
    fn success_with_and_without_a_new_refresh_token() {
        let g = parse(&url(), &resp(200, r#"{"access_token":"at","token_type":"Bearer","expires_in":"3599","refresh_token":"rt2"}"#))
            .unwrap()
            .ok()
            .unwrap();
        let r = g.into_record(100, Some(&Secret::new("rt1"))).unwrap();
        assert_eq!(r.refresh_token.expose(), "rt2");
        assert_eq!(r.expires_at, Some(3699));
        let g = parse(
            &url(),
            &resp(200, r#"{"access_token":"at","expires_in":60}"#),
        )
        .unwrap()
        .ok()
        .unwrap();
        assert_eq!(
            g.into_record(0, Some(&Secret::new("rt1")))
                .unwrap()
                .refresh_token
                .expose(),
            "rt1"
        );
        let g = parse(&url(), &resp(200, r#"{"access_token":"at"}"#))
            .unwrap()
            .ok()
            .unwrap();
        assert!(
            g.into_record(0, None).is_none(),
            "a first grant needs a refresh token"
        );
    }

    #[test]
    fn refusals_and_failures() {
        let r = parse(&url(), &resp(400, r#"{"error":"invalid_grant","error_description":"AADSTS70000: bad\r\nTrace ID: x"}"#))
            .unwrap()
            .unwrap_err();
        assert_eq!(
            (r.error.as_str(), r.description.as_str()),
            ("invalid_grant", "AADSTS70000: bad")
        );
        // A server error or a page that is not OAuth's is a connection
        // problem (exit 4), not a refusal.
        for (status, body) in [
            (503, r#"{"error":"temporarily_unavailable"}"#),
            (404, "<html>"),
        ] {
            let e = parse(&url(), &resp(status, body)).err().unwrap();
            assert!(matches!(e, Error::Connect { .. }), "{e}");
        }
        let e = parse(
            &url(),
            &resp(200, r#"{"access_token":"at","token_type":"mac"}"#),
        )
        .err()
        .unwrap();
        assert!(!e.to_string().contains("\"at\""), "{e}");
        assert!(parse(&url(), &resp(200, "[1]")).is_err());
    }

    #[test]
    fn one_line_is_short_and_clean() {
        assert_eq!(one_line("a\u{7}b\nc", 10), "ab");
        assert_eq!(one_line("abcdef", 3), "abc…");
    }
}
