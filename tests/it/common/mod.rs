//! Shared integration-test harness: a real Dovecot per test (`dovecot`), a
//! deterministic mail corpus (`corpus`), the modified UTF-7 encoding
//! Dovecot uses for Maildir++ folder names (`mutf7`), a local OAuth2
//! provider (`oauth`), and a scripted IMAP server for provider quirks real
//! servers cannot show (`quirk_imap`).
//!
//! Every test binary compiles this module on its own and uses only part of
//! it, hence the blanket `allow`s.
#![allow(dead_code, unused_imports)]

pub mod corpus;
pub mod cyrus;
pub mod dovecot;
pub mod mutf7;
pub mod oauth;
pub mod quirk_imap;

pub use corpus::{CorpusOpts, Message, corpus, folder_set, spread};
pub use cyrus::Cyrus;
pub use dovecot::{Dovecot, DovecotOpts, MailboxStatus};
pub use quirk_imap::{QuirkOpts, QuirkServer, Throttle, ThrottleStyle};
