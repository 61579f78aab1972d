//! Shared integration-test harness: a real Dovecot per test (`dovecot`), a
//! deterministic mail corpus (`corpus`) and the modified UTF-7 encoding
//! Dovecot uses for Maildir++ folder names (`mutf7`).
//!
//! Every test binary compiles this module on its own and uses only part of
//! it, hence the blanket `allow`s.
#![allow(dead_code, unused_imports)]

pub mod corpus;
pub mod cyrus;
pub mod dovecot;
pub mod mutf7;
pub mod oauth;

pub use corpus::{CorpusOpts, Message, corpus, folder_set, spread};
pub use cyrus::Cyrus;
pub use dovecot::{Dovecot, DovecotOpts, MailboxStatus};
