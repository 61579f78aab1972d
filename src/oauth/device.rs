//! The device authorization flow (RFC 8628), Microsoft's way in for mail:
//! show a URL and a short code, then poll the token endpoint while the
//! user signs in on any device. Nothing listens locally, so it works over
//! SSH and on headless servers.

use std::time::Duration;

use serde_json::{Value, json};

use super::grant::{self, one_line};
use super::store::TokenRecord;
use super::{OAuthConfig, bearer, form, http};
use crate::endpoint::TlsOptions;
use crate::error::{Error, Result};
use crate::interrupt::Interrupt;

/// What the device authorization endpoint hands out.
struct Authorization {
    device_code: crate::endpoint::Secret,
    user_code: String,
    verification_uri: String,
    expires_in: u64,
    interval: u64,
}

/// Runs the flow: `show` gets the line for people and the JSON event for
/// scripts; returns the tokens once the user has signed in.
pub async fn sign_in(
    cfg: &OAuthConfig,
    show: &dyn Fn(&str, Value),
    interrupt: &Interrupt,
) -> Result<TokenRecord> {
    let Some(url) = &cfg.device_url else {
        return Err(Error::Usage(format!(
            "{}: no device authorization endpoint: set oauth2_device_url, or oauth2_flow = \"loopback\"",
            cfg.account
        )));
    };
    let body = form::encode(&[
        ("client_id", &cfg.client_id),
        ("scope", &cfg.scopes.join(" ")),
    ]);
    let resp = http::post_form(url, &body, &TlsOptions::default(), cfg.timeouts).await?;
    let a = if (200..300).contains(&resp.status) {
        authorization(url, &resp)?
    } else {
        // An error answer reads like the token endpoint's.
        return Err(match grant::parse(url, &resp)? {
            Err(r) => grant::refusal_error(cfg, "the device sign-in", &r),
            Ok(_) => Error::protocol(url.server(), format!("HTTP {} with a token", resp.status)),
        });
    };
    show(
        &format!(
            "To sign in {} as {}, open {} and enter the code {} (valid for {} minutes).",
            cfg.account,
            cfg.user,
            a.verification_uri,
            a.user_code,
            a.expires_in.div_ceil(60)
        ),
        json!({"event": "oauth_device", "account": cfg.account, "user": cfg.user,
               "verification_uri": a.verification_uri, "user_code": a.user_code,
               "expires_in": a.expires_in}),
    );
    poll(cfg, &a, interrupt).await
}

fn authorization(url: &form::HttpUrl, resp: &http::Response) -> Result<Authorization> {
    let bad = |what: &str| {
        Error::protocol(
            url.server(),
            format!("the device authorization answer has no {what}"),
        )
    };
    let j = resp.json().ok_or_else(|| bad("JSON object"))?;
    let s = |k: &str| j.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    let n = |k: &str| match j.get(k) {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    Ok(Authorization {
        device_code: crate::endpoint::Secret::new(
            s("device_code").ok_or_else(|| bad("device_code"))?,
        ),
        user_code: one_line(s("user_code").ok_or_else(|| bad("user_code"))?, 40),
        // Google spells it verification_url.
        verification_uri: one_line(
            s("verification_uri")
                .or_else(|| s("verification_url"))
                .ok_or_else(|| bad("verification_uri"))?,
            300,
        ),
        expires_in: n("expires_in").unwrap_or(900).clamp(30, 3600),
        interval: n("interval").unwrap_or(5).clamp(1, 60),
    })
}

/// Polls at the given interval (5 s more after each `slow_down`) until
/// the user has signed in, declined, or the code expired.
async fn poll(cfg: &OAuthConfig, a: &Authorization, interrupt: &Interrupt) -> Result<TokenRecord> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(a.expires_in);
    let mut interval = a.interval;
    let mut blips = 0;
    let grant = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("device_code", a.device_code.expose()),
    ];
    let expired = || Error::OAuth {
        account: cfg.account.clone(),
        msg: format!(
            "the code expired before the sign-in was finished; run `mailferry login {}` again",
            cfg.account
        ),
    };
    loop {
        pause(Duration::from_secs(interval), interrupt).await?;
        if tokio::time::Instant::now() >= deadline {
            return Err(expired());
        }
        match grant::request(cfg, &cfg.token_url, &grant).await {
            Ok(Ok(g)) => {
                return g
                    .into_record(bearer::now(), None)
                    .ok_or_else(|| no_refresh_token(cfg));
            }
            Ok(Err(r)) => match r.error.as_str() {
                "authorization_pending" => blips = 0,
                "slow_down" => interval += 5,
                "expired_token" | "code_expired" => return Err(expired()),
                "access_denied" | "authorization_declined" => {
                    return Err(Error::OAuth {
                        account: cfg.account.clone(),
                        msg: "the sign-in was declined".into(),
                    });
                }
                _ => return Err(grant::refusal_error(cfg, "the device sign-in", &r)),
            },
            // A dropped connection while waiting is no reason to give up
            // on a sign-in the user may be finishing.
            Err(e) if e.is_transient() && blips < 3 => blips += 1,
            Err(e) => return Err(e),
        }
    }
}

/// The error for a grant without a refresh token: nothing to keep.
pub fn no_refresh_token(cfg: &OAuthConfig) -> Error {
    Error::OAuth {
        account: cfg.account.clone(),
        msg: format!(
            "{} issued no refresh token, so the sign-in would not outlive the hour; \
             check oauth2_scopes (Microsoft needs offline_access)",
            cfg.token_url.host
        ),
    }
}

/// Sleeps `d`, ending at once on ^C.
pub async fn pause(d: Duration, interrupt: &Interrupt) -> Result<()> {
    let end = tokio::time::Instant::now() + d;
    loop {
        interrupt.check()?;
        let now = tokio::time::Instant::now();
        if now >= end {
            return Ok(());
        }
        tokio::time::sleep((end - now).min(Duration::from_millis(100))).await;
    }
}
