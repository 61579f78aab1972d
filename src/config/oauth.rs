//! An account's `auth = "oauth2"` keys resolved into an
//! [`OAuthConfig`]: the provider's defaults, what the file overrides, and
//! where the tokens are kept. Every mistake names the file, line and key.

use std::path::Path;

use toml::Spanned;

use super::file::{ConfigFile, RawAccount};
use crate::endpoint::{Endpoint, Secret, Timeouts};
use crate::error::Result;
use crate::oauth::{ClientSecret, Flow, HttpUrl, OAuthConfig, Provider, TokenStore};
use crate::provider::ProfileUse;

/// The account's built-in OAuth2 client, `None` when it authenticates
/// otherwise (a password, or `oauth2_token_command`). `tokens` is the
/// directory of the default token files. Without `oauth2_provider`, the
/// account's provider profile names the OAuth2 provider (`provider =
/// "gmail"` signs in with Google); `span` is the account's table, for
/// messages when the keys that would say more are not set.
pub(super) fn resolve(
    cf: &ConfigFile,
    name: &str,
    (raw, span): (&RawAccount, std::ops::Range<usize>),
    endpoint: &Endpoint,
    profile: Option<ProfileUse>,
    tokens: &Path,
    timeouts: Timeouts,
) -> Result<Option<OAuthConfig>> {
    let key_err = |span: std::ops::Range<usize>, key: &str, msg: &str| {
        cf.error_at(span, format!("account.{name}.{key}: {msg}"))
    };
    let oauth2 = match &raw.auth {
        None => false,
        Some(a) => match a.get_ref().as_str() {
            "password" => false,
            "oauth2" => true,
            other => {
                return Err(key_err(
                    a.span(),
                    "auth",
                    &format!("{other:?} is not \"password\" or \"oauth2\""),
                ));
            }
        },
    };
    // Where a message points when no key of its own is set: the url, the
    // provider, else the account's table.
    let anchor = raw
        .url
        .as_ref()
        .map(|u| u.span())
        .or(raw.provider.as_ref().map(|p| p.span()))
        .unwrap_or(span);
    let own_keys = own_keys(raw);
    if !oauth2 {
        if let Some(key) = own_keys.first() {
            return Err(cf.error_at(
                anchor.clone(),
                format!("account.{name}.{key}: needs auth = \"oauth2\" in the account"),
            ));
        }
        return Ok(None);
    }
    let auth_span = raw.auth.as_ref().map(|a| a.span()).unwrap_or(anchor);
    let password = [
        ("password", raw.password.is_some()),
        ("password_command", raw.password_command.is_some()),
        ("password_file", raw.password_file.is_some()),
        ("password_env", raw.password_env.is_some()),
    ];
    if let Some((key, _)) = password.iter().find(|(_, set)| *set) {
        return Err(key_err(
            auth_span,
            "auth",
            &format!("\"oauth2\" and {key} exclude each other"),
        ));
    }
    let Endpoint::Server(url) = endpoint else {
        return Err(key_err(auth_span, "auth", "a Maildir has no login"));
    };
    if raw.oauth2_token_command.is_some() {
        // The token comes from the user's command; nothing of ours to set.
        if let Some(key) = own_keys.first() {
            return Err(key_err(
                auth_span,
                key,
                "oauth2_token_command brings its own token; remove one of them",
            ));
        }
        return Ok(None);
    }
    let provider = match (&raw.oauth2_provider, profile) {
        (Some(p), _) => Provider::parse(p.get_ref())
            .map_err(|e| key_err(p.span(), "oauth2_provider", &e.to_string()))?,
        // The profile knows who signs its accounts in.
        (None, Some(ProfileUse { profile: pr, .. })) => match pr.oauth {
            Some(o) => Provider::parse(o).expect("profiles name known OAuth2 providers"),
            None => {
                return Err(key_err(
                    auth_span,
                    "auth",
                    &format!(
                        "{} offers no OAuth2 sign-in for other mail programs: use an app password (password_command; README, Providers), or oauth2_provider = \"custom\" with your own endpoints",
                        pr.title
                    ),
                ));
            }
        },
        (None, None) => {
            return Err(key_err(
                auth_span,
                "auth",
                "\"oauth2\" needs oauth2_provider (google, microsoft or custom) and oauth2_client_id",
            ));
        }
    };
    let Some(client_id) = raw
        .oauth2_client_id
        .as_ref()
        .filter(|c| !c.get_ref().is_empty())
    else {
        return Err(key_err(
            auth_span,
            "auth",
            "\"oauth2\" needs oauth2_client_id: mailferry has no client of its own; register one with the provider (README, OAuth2)",
        ));
    };
    let tenant = match (&raw.oauth2_tenant, provider) {
        (None, _) => "common".to_string(),
        (Some(t), Provider::Microsoft) => t.get_ref().clone(),
        (Some(t), _) => {
            return Err(key_err(
                t.span(),
                "oauth2_tenant",
                "only for oauth2_provider = \"microsoft\"",
            ));
        }
    };
    if tenant.is_empty()
        || !tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.".contains(c))
    {
        let span = raw
            .oauth2_tenant
            .as_ref()
            .map(|t| t.span())
            .unwrap_or(auth_span.clone());
        return Err(key_err(
            span,
            "oauth2_tenant",
            "letters, digits, '-' and '.' only",
        ));
    }
    let endpoint_url = |key: &str, set: &Option<Spanned<String>>, default: Option<String>| match set
    {
        Some(s) => HttpUrl::parse(s.get_ref())
            .map(Some)
            .map_err(|e| key_err(s.span(), key, &e.to_string())),
        None => default
            .map(|d| HttpUrl::parse(&d))
            .transpose()
            .map_err(|e| key_err(auth_span.clone(), key, &e.to_string())),
    };
    let auth_url = endpoint_url(
        "oauth2_auth_url",
        &raw.oauth2_auth_url,
        provider.auth_url(&tenant),
    )?;
    let device_url = endpoint_url(
        "oauth2_device_url",
        &raw.oauth2_device_url,
        provider.device_url(&tenant),
    )?;
    let Some(token_url) = endpoint_url(
        "oauth2_token_url",
        &raw.oauth2_token_url,
        provider.token_url(&tenant),
    )?
    else {
        return Err(key_err(
            auth_span,
            "auth",
            "oauth2_provider = \"custom\" needs oauth2_token_url",
        ));
    };
    let flow = match &raw.oauth2_flow {
        Some(f) => Flow::parse(f.get_ref())
            .map_err(|e| key_err(f.span(), "oauth2_flow", &e.to_string()))?,
        None => provider.default_flow(device_url.is_some()),
    };
    match flow {
        Flow::Device if device_url.is_none() => {
            return Err(key_err(
                auth_span,
                "auth",
                "the device flow needs oauth2_device_url",
            ));
        }
        Flow::Loopback if auth_url.is_none() => {
            return Err(key_err(
                auth_span,
                "auth",
                "the loopback flow needs oauth2_auth_url",
            ));
        }
        _ => {}
    }
    let scopes = raw
        .oauth2_scopes
        .clone()
        .unwrap_or_else(|| provider.default_scopes());
    if scopes.is_empty()
        || scopes
            .iter()
            .any(|s| s.is_empty() || s.contains(char::is_whitespace))
    {
        return Err(key_err(
            auth_span,
            "oauth2_scopes",
            "needs one or more scopes, each without spaces",
        ));
    }
    let client_secret = match (&raw.oauth2_client_secret, &raw.oauth2_client_secret_command) {
        (Some(s), Some(_)) => {
            return Err(key_err(
                s.span(),
                "oauth2_client_secret",
                "and oauth2_client_secret_command exclude each other",
            ));
        }
        (Some(s), None) => Some(ClientSecret::Plain(Secret::new(s.get_ref().clone()))),
        (None, Some(c)) => Some(ClientSecret::Command(c.clone())),
        (None, None) => None,
    };
    let mut cfg = OAuthConfig {
        account: name.to_string(),
        provider,
        flow,
        client_id: client_id.get_ref().clone(),
        client_secret,
        scopes,
        auth_url,
        token_url,
        device_url,
        user: url.user.clone(),
        store: TokenStore::Command(String::new()),
        timeouts,
    };
    cfg.store = match &raw.token_store_command {
        Some(c) => TokenStore::Command(c.clone()),
        None => TokenStore::default_file(tokens, &cfg.owner()),
    };
    Ok(Some(cfg))
}

/// The OAuth2 keys set in the account, besides `oauth2_token_command`.
fn own_keys(raw: &RawAccount) -> Vec<&'static str> {
    [
        ("oauth2_provider", raw.oauth2_provider.is_some()),
        ("oauth2_client_id", raw.oauth2_client_id.is_some()),
        ("oauth2_client_secret", raw.oauth2_client_secret.is_some()),
        (
            "oauth2_client_secret_command",
            raw.oauth2_client_secret_command.is_some(),
        ),
        ("oauth2_scopes", raw.oauth2_scopes.is_some()),
        ("oauth2_tenant", raw.oauth2_tenant.is_some()),
        ("oauth2_auth_url", raw.oauth2_auth_url.is_some()),
        ("oauth2_token_url", raw.oauth2_token_url.is_some()),
        ("oauth2_device_url", raw.oauth2_device_url.is_some()),
        ("oauth2_flow", raw.oauth2_flow.is_some()),
        ("token_store_command", raw.token_store_command.is_some()),
    ]
    .into_iter()
    .filter(|(_, set)| *set)
    .map(|(k, _)| k)
    .collect()
}
