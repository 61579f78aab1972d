//! OAuth2 built in: sign in once with `mailferry login ACCOUNT` (the
//! device flow for Microsoft, the loopback-redirect flow for Google), keep
//! the refresh token private, and hand every connection a good access
//! token, refreshed before it expires and again when a server refuses it.
//!
//! The protocol clients see only [`Bearer`] (through
//! [`crate::endpoint::Credentials::OAuth2`]): they authenticate with XOAUTH2
//! or OAUTHBEARER and report a refusal; what a token is and where it comes
//! from stays here.

pub mod bearer;
mod command;
pub mod device;
pub mod form;
pub mod grant;
pub mod http;
pub mod loopback;
pub mod provider;
pub mod store;

pub use bearer::{Bearer, LoginToken};
pub use form::HttpUrl;
pub use provider::{Flow, Provider};
pub use store::{Owner, TokenRecord, TokenStore};

use crate::endpoint::{Secret, Timeouts};
use crate::error::Result;

/// A config account's OAuth2 client: who signs in, at which provider,
/// with which client registration, and where the tokens are kept.
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    /// The config account's name: messages say `mailferry login NAME`.
    pub account: String,
    pub provider: Provider,
    pub flow: Flow,
    /// The user's own client registration: mailferry has none of its own.
    pub client_id: String,
    pub client_secret: Option<ClientSecret>,
    pub scopes: Vec<String>,
    pub auth_url: Option<HttpUrl>,
    pub token_url: HttpUrl,
    pub device_url: Option<HttpUrl>,
    /// The mailbox user (the URL's), sent as the login hint.
    pub user: String,
    pub store: TokenStore,
    pub timeouts: Timeouts,
}

impl OAuthConfig {
    /// Whose tokens these are, as written into the store.
    pub fn owner(&self) -> Owner {
        Owner {
            user: self.user.clone(),
            client_id: self.client_id.clone(),
            token_url: format!(
                "{}://{}{}",
                if self.token_url.tls { "https" } else { "http" },
                self.token_url.host_header(),
                self.token_url.target
            ),
        }
    }
}

/// The client secret some providers want with every token request
/// (Google's "desktop app" clients; confidential clients).
#[derive(Debug, Clone)]
pub enum ClientSecret {
    Plain(Secret),
    /// `oauth2_client_secret_command`: its first output line.
    Command(String),
}

impl ClientSecret {
    /// The secret, running the command if that is where it comes from.
    pub async fn resolve(&self, who: &str) -> Result<Secret> {
        match self {
            ClientSecret::Plain(s) => Ok(s.clone()),
            ClientSecret::Command(c) => {
                let what = "oauth2_client_secret_command";
                let out = command::run(c, &[], None, who, what).await?;
                Ok(Secret::new(command::first_line(&out, who, what)?))
            }
        }
    }
}
