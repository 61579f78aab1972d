//! What mailferry knows about each OAuth2 provider: endpoints, the scopes
//! that open IMAP and POP3, and which sign-in flow works for mail. A
//! provider profile (`provider = "gmail"`) names one of these by
//! [`Provider::name`].

use crate::error::{Error, Result};

/// An OAuth2 identity provider with built-in defaults, or `Custom` (every
/// URL from the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Google,
    Microsoft,
    Custom,
}

/// How `mailferry login` gets the user's consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// RFC 8628: a code to enter at a URL, on any device; nothing listens
    /// locally.
    Device,
    /// RFC 8252: the browser comes back to `http://127.0.0.1:PORT/` with a
    /// code, exchanged with a PKCE verifier.
    Loopback,
}

impl Provider {
    /// Parses the `oauth2_provider` value.
    pub fn parse(s: &str) -> Result<Provider> {
        match s.to_ascii_lowercase().as_str() {
            "google" => Ok(Provider::Google),
            "microsoft" => Ok(Provider::Microsoft),
            "custom" => Ok(Provider::Custom),
            _ => Err(Error::Usage(format!(
                "{s:?} is not an OAuth2 provider mailferry knows (google, microsoft or custom)"
            ))),
        }
    }

    /// The name provider profiles and the config use.
    pub fn name(self) -> &'static str {
        match self {
            Provider::Google => "google",
            Provider::Microsoft => "microsoft",
            Provider::Custom => "custom",
        }
    }

    /// The authorization endpoint (loopback flow).
    pub fn auth_url(self, tenant: &str) -> Option<String> {
        match self {
            Provider::Google => Some("https://accounts.google.com/o/oauth2/v2/auth".into()),
            Provider::Microsoft => Some(format!(
                "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize"
            )),
            Provider::Custom => None,
        }
    }

    /// The token endpoint (code exchange, device polling, refresh).
    pub fn token_url(self, tenant: &str) -> Option<String> {
        match self {
            Provider::Google => Some("https://oauth2.googleapis.com/token".into()),
            Provider::Microsoft => Some(format!(
                "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"
            )),
            Provider::Custom => None,
        }
    }

    /// The device authorization endpoint. Google has one, but it refuses
    /// the mail scope, so mailferry does not offer it.
    pub fn device_url(self, tenant: &str) -> Option<String> {
        match self {
            Provider::Microsoft => Some(format!(
                "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/devicecode"
            )),
            Provider::Google | Provider::Custom => None,
        }
    }

    /// Scopes that let the token open IMAP and POP3. Microsoft's
    /// `offline_access` is what returns a refresh token.
    pub fn default_scopes(self) -> Vec<String> {
        let s: &[&str] = match self {
            Provider::Google => &["https://mail.google.com/"],
            Provider::Microsoft => &[
                "https://outlook.office.com/IMAP.AccessAsUser.All",
                "https://outlook.office.com/POP.AccessAsUser.All",
                "offline_access",
            ],
            Provider::Custom => &[],
        };
        s.iter().map(|s| s.to_string()).collect()
    }

    /// The flow that works for mail with this provider's defaults.
    pub fn default_flow(self, has_device_url: bool) -> Flow {
        match self {
            Provider::Google => Flow::Loopback,
            Provider::Microsoft => Flow::Device,
            Provider::Custom if has_device_url => Flow::Device,
            Provider::Custom => Flow::Loopback,
        }
    }

    /// Extra query parameters of the authorization URL: Google returns a
    /// refresh token only with `access_type=offline`, and again on a
    /// second sign-in only with `prompt=consent`.
    pub fn auth_params(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Provider::Google => &[("access_type", "offline"), ("prompt", "consent")],
            Provider::Microsoft | Provider::Custom => &[],
        }
    }

    /// Whether a refresh request repeats the scopes (Microsoft's v2.0
    /// endpoint asks for them; Google's takes none).
    pub fn scope_on_refresh(self) -> bool {
        !matches!(self, Provider::Google)
    }
}

impl Flow {
    /// Parses the `oauth2_flow` value.
    pub fn parse(s: &str) -> Result<Flow> {
        match s.to_ascii_lowercase().as_str() {
            "device" => Ok(Flow::Device),
            "loopback" | "browser" => Ok(Flow::Loopback),
            _ => Err(Error::Usage(format!(
                "{s:?} is not a sign-in flow (device or loopback)"
            ))),
        }
    }
}
