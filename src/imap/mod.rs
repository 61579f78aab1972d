//! IMAP client layer: connect/authenticate, a checked command runner, and
//! the operations fetch/push/prune/verify need (LIST, SELECT/STATUS,
//! metadata and body FETCH, STORE/EXPUNGE/MOVE, pipelined APPEND).
//!
//! Knows nothing of jobs, Maildirs or state. Built on its own framing and
//! parser rather than async-imap's `Session`, whose streaming commands
//! swallow NO/BAD, return partial results on a dropped connection and drop
//! unsolicited responses (crates.md §2); see `io.rs` and `parse.rs`.

mod append;
mod caps;
mod codec;
mod connect;
mod fetch;
mod io;
mod mailbox;
mod pace;
mod parse;
mod quirks;
mod session;
mod write;

pub use append::{AppendMsg, Appended};
pub use caps::Capabilities;
pub use codec::{
    SLASH_STANDIN, UidSet, decode_folder, encode_folder, format_internal_date, parse_internal_date,
};
pub use connect::{ConnInfo, connect};
pub(crate) use fetch::header_value;
pub use fetch::{FetchReport, FetchedMessage, HeaderInfo, MessageMeta, MetaListing};
pub use mailbox::{FolderStatus, ListedFolder, Namespace, RoleOutcome, Selected, SpecialUse};
pub use pace::Pace;
pub use quirks::{BodyItem, Quirks};
pub use session::{FlagChange, ServerChanges, Session};
pub use write::{CopyUid, StoreMode};

#[cfg(test)]
mod tests;
