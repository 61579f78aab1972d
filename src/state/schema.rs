//! The schema as an ordered list of migrations; `PRAGMA user_version` is
//! the number applied. Append only: a released migration never changes,
//! so every state file reaches the same schema whatever version made it.

/// Migration `i` takes the schema from version `i` to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[V1, V2, V3];

const V1: &str = r#"
CREATE TABLE accounts (
    id         INTEGER PRIMARY KEY,
    -- canonical endpoint, e.g. imaps://alice@host:993; never a password
    key        TEXT NOT NULL UNIQUE
);

CREATE TABLE folders (
    id            INTEGER PRIMARY KEY,
    account_id    INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,            -- decoded, '/'-separated
    uidvalidity   INTEGER,
    uidnext       INTEGER,
    highestmodseq INTEGER,
    last_seen_at  INTEGER,                  -- unix seconds of the last listing
    gone_since    INTEGER,                  -- set when the server stopped listing it
    UNIQUE (account_id, name)
);

-- One row per source message per target it was stored in.
CREATE TABLE messages (
    id              INTEGER PRIMARY KEY,
    folder_id       INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    uidvalidity     INTEGER,
    uid             INTEGER,
    uidl            TEXT,
    message_id      TEXT,
    size            INTEGER,
    digest          BLOB,
    internal_date   INTEGER,
    flags           TEXT NOT NULL DEFAULT '',  -- IMAP form: \Seen \Flagged $Kw
    first_stored_at INTEGER NOT NULL,
    target          TEXT NOT NULL,             -- maildir:/abs/path or a target URL
    location        TEXT,                      -- Maildir unique name or target UID
    deleted_at      INTEGER,                   -- removed from the source
    delete_reason   TEXT,
    CHECK ((uid IS NULL) = (uidvalidity IS NULL)),
    CHECK (uid IS NOT NULL OR uidl IS NOT NULL OR digest IS NOT NULL)
);
CREATE UNIQUE INDEX messages_imap ON messages (folder_id, uidvalidity, uid, target)
    WHERE uid IS NOT NULL;
CREATE UNIQUE INDEX messages_pop3 ON messages (folder_id, uidl, target)
    WHERE uidl IS NOT NULL;
CREATE UNIQUE INDEX messages_digest ON messages (folder_id, digest, target)
    WHERE uid IS NULL AND uidl IS NULL;
CREATE INDEX messages_message_id ON messages (folder_id, message_id)
    WHERE message_id IS NOT NULL;
CREATE INDEX messages_target_digest ON messages (target, digest)
    WHERE digest IS NOT NULL;

CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    command     TEXT NOT NULL,
    job         TEXT,
    result      TEXT,                        -- ok, partial, failed, interrupted
    copied      INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    error       TEXT
);
"#;

/// Prune (SPEC §2): a write-ahead log of every deletion, written before the
/// server is asked and completed when it confirmed, so a run killed in
/// between leaves a record of each message that may be gone; and the
/// removal of a target copy (a pruned Maildir file), so a pruned backup is
/// no longer taken as proof that a message is stored.
const V2: &str = r#"
ALTER TABLE messages ADD COLUMN target_removed_at INTEGER;

CREATE TABLE deletions (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER,
    account     TEXT NOT NULL,   -- account key, or maildir:/abs for a local Maildir
    folder      TEXT NOT NULL,   -- decoded, '/'-separated
    uidvalidity INTEGER,
    uid         INTEGER,
    uidl        TEXT,
    file        TEXT,            -- Maildir unique name
    message_id  TEXT,
    size        INTEGER,
    date        INTEGER,         -- the date the rules judged, unix seconds
    reason      TEXT NOT NULL,   -- e.g. older-than 365d
    proof       TEXT,            -- how a stored copy was proven, if asked for
    method      TEXT NOT NULL,   -- expunge, trash, dele, unlink
    msg_row     INTEGER,         -- messages.id this deletion concerns, if any
    planned_at  INTEGER NOT NULL,
    done_at     INTEGER,         -- NULL while in flight (or killed)
    outcome     TEXT             -- NULL pending, deleted, kept (still there on a later run)
);
CREATE INDEX deletions_pending ON deletions (account, folder) WHERE outcome IS NULL;
"#;

/// Daily transfer budgets (Gmail: 2,500 MB down, 500 MB up a day): bytes
/// spent per budget, direction and UTC hour, so a rolling 24-hour total
/// holds across runs and a run can say when the next message fits.
const V3: &str = r#"
CREATE TABLE budget_usage (
    budget    TEXT NOT NULL,     -- e.g. gmail:alice@gmail.com
    direction TEXT NOT NULL,     -- download | upload
    hour      INTEGER NOT NULL,  -- unix seconds / 3600
    bytes     INTEGER NOT NULL,
    PRIMARY KEY (budget, direction, hour)
);
"#;
