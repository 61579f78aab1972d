//! All integration tests in one binary: `tests/common` (the Dovecot
//! harness and corpus) compiles once and the suite links once, which keeps
//! CI fast on two cores. Each module is one area, against a real Dovecot
//! where a server is involved.

mod common;

mod check;
mod cli;
mod fetch_folders;
mod fetch_imap;
mod fetch_keywords;
mod fetch_lost_state;
mod fetch_pop3;
mod generated_docs;
mod harness_smoke;
mod imap_client;
mod json_errors;
mod migrate;
mod namespace;
mod oauth;
mod pop3_client;
mod pop3_fake;
mod providers;
mod proxy;
mod prune;
mod push;
mod push_noop;
mod push_sources;
mod special_use;
mod status;
