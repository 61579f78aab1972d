//! POP3 (RFC 1939, 2449, 2595, 5034): a sans-I/O [`codec`] that owns every
//! framing rule, and a tokio [`client`] that drives it over a
//! [`MailStream`](crate::net::MailStream). Hand-written because async-pop
//! loses data (no dot-unstuffing) and cannot do STLS (crates.md §3).

pub mod client;
pub mod codec;

pub use client::{ConnInfo, Fetched, Pop3Client, connect};
pub use codec::{Limits, Status};
