//! OAuth2 built in: sign in once with `mailferry login ACCOUNT` (the
//! device flow for Microsoft, the loopback-redirect flow for Google), keep
//! the refresh token private, and hand every connection a good access
//! token, refreshed before it expires and again when a server refuses it.

pub mod form;
pub mod http;

pub use form::HttpUrl;
