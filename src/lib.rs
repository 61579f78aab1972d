//! mailferry: move mail between POP3, IMAP and Maildir without losing or
//! duplicating a message.
//!
//! The spine, in the order a run goes through it:
//! `cli` → `config` (URLs, accounts, jobs) → `plan` (pure: listings + state →
//! actions) → `exec` (runs actions over the `imap`/`pop3`/`maildir`
//! endpoints, records in `state`) → `report` (progress, `--json`, summary,
//! exit code). Protocol modules know nothing of jobs; the planner knows
//! nothing of sockets.

pub mod app;
pub mod bytes;
pub mod charset;
pub mod cli;
pub mod commands;
pub mod config;
pub mod date;
pub mod docs;
pub mod encoded_word;
pub mod endpoint;
pub mod error;
pub mod exec;
pub mod flow;
pub mod imap;
pub mod interrupt;
pub mod maildir;
pub mod migrate;
pub mod mutf7;
pub mod net;
pub mod oauth;
pub mod plan;
pub mod pop3;
pub mod provider;
pub mod report;
pub mod state;
pub mod types;

pub use error::{Error, ExitCode, Result};
