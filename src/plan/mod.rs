//! The planner: pure functions from (source listing, state, target listing)
//! to actions. No sockets, no files, no clock: everything it needs is
//! passed in, so every case is unit-tested and `plan`/`--dry-run` shows
//! exactly what a real run would do.
//!
//! One vocabulary serves every command: a message is known by its
//! [`MsgKey`] within a folder (IMAP UID under one UIDVALIDITY, or POP3
//! UIDL); the state says which keys are durably stored where; the planner
//! says what to copy, adopt, re-flag and delete.

mod copy;
mod folders;
mod pair_files;
mod prune;
mod rekey;
mod retention;

pub use copy::{FolderPlan, LocalFile, plan_copy};
pub use folders::{
    FolderInfo, FolderMap, MapReason, MapRule, map_folders, special_use_by_name, strip_namespace,
};
pub use pair_files::{FilePairing, UnclaimedFile, pair_files};
pub use prune::{PruneCandidate, PruneDecision, plan_prune};
pub use rekey::{RekeyOutcome, RekeyRecord, RekeySource, rekey};
pub use retention::{Deletion, deletion_cutoff, source_deletions};

use crate::types::{Flags, Uid, Uidl};

/// A message's identity within one source folder.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MsgKey {
    /// IMAP UID, valid under the folder's current UIDVALIDITY.
    Uid(Uid),
    /// POP3 unique id (or its digest fallback).
    Uidl(Uidl),
}

impl MsgKey {
    /// The UID, for IMAP keys.
    pub fn uid(&self) -> Option<Uid> {
        match self {
            MsgKey::Uid(u) => Some(*u),
            MsgKey::Uidl(_) => None,
        }
    }
}

impl std::fmt::Display for MsgKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MsgKey::Uid(u) => write!(f, "UID {u}"),
            MsgKey::Uidl(u) => write!(f, "UIDL {u}"),
        }
    }
}

/// One message as the source lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceMsg {
    pub key: MsgKey,
    pub size: u64,
    /// Arrival date, unix seconds (INTERNALDATE; for POP3, unknown until
    /// downloaded, so 0 and not filtered on).
    pub date: i64,
    /// Server flags; POP3 has none.
    pub flags: Option<Flags>,
}

/// What the state knows about a message of this folder.
#[derive(Debug, Clone, PartialEq)]
pub struct Known {
    /// The state's row id, to update or mark this record.
    pub id: i64,
    pub key: MsgKey,
    /// Flags last carried to the target (what the server had then).
    pub flags: Option<Flags>,
    /// When it was first durably stored on the target, unix seconds.
    pub stored_at: i64,
    /// Where on the target: Maildir unique name, or target UID.
    pub location: String,
    pub size: u64,
    pub date: i64,
    pub message_id: Option<String>,
    /// Already deleted from the source by retention.
    pub deleted: bool,
}

/// Why a source message is not copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    TooLarge { size: u64, max: u64 },
    TooOld,
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::TooLarge { size, max } => {
                write!(f, "larger than --max-size ({size} > {max} bytes)")
            }
            SkipReason::TooOld => write!(f, "older than --since"),
        }
    }
}
