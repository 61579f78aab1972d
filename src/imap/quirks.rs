//! Provider quirks as capability-like switches: what a server advertises
//! or does that must not be taken at its word. A provider profile
//! (`src/provider.rs`) sets them; the session applies them, so the rest of
//! the client asks the same questions ("CONDSTORE?", "which body item?")
//! and gets the answers that are safe for this server.

/// Switches for one server. `Default` is a standards-conforming server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quirks {
    /// Never use CONDSTORE/QRESYNC or a HIGHESTMODSEQ, even when the
    /// server sends one: Yahoo sends `[HIGHESTMODSEQ]` on SELECT with only
    /// its private XYMHIGHESTMODSEQ behind it, Exchange has none. Every
    /// listing is then a full UID scan (`UID FETCH 1:*`), and no folder is
    /// passed over on an unchanged STATUS.
    pub no_condstore: bool,
    /// The FETCH item that downloads whole messages.
    pub body_item: BodyItem,
    /// APPEND drops `\Flagged` (Exchange, Microsoft 365): after APPEND the
    /// flag is set with `UID STORE` on the APPENDUID and read back; a copy
    /// where it did not stick is reported in [`super::Appended::lost_flags`].
    pub flag_after_append: bool,
    /// The largest message the provider takes on APPEND, for a server
    /// that does not advertise RFC 7889 APPENDLIMIT (an advertised one
    /// wins): a bigger one is refused before it is read, not sent.
    pub append_limit: Option<u64>,
}

/// How whole messages are fetched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BodyItem {
    /// `BODY.PEEK[]`: the exact bytes, and never sets `\Seen`. iCloud
    /// answers only this one: to `RFC822` it sends a FETCH response
    /// without the data.
    #[default]
    BodyPeek,
    /// `RFC822`, the legacy item: for a server that does not answer
    /// `BODY.PEEK[]` (none known). Sets `\Seen` unless the folder is open
    /// read-only, as fetch and verify open it.
    Rfc822,
}

impl BodyItem {
    /// The item as sent in `UID FETCH`.
    pub fn wire(self) -> &'static str {
        match self {
            BodyItem::BodyPeek => "BODY.PEEK[]",
            BodyItem::Rfc822 => "RFC822",
        }
    }
}

impl Quirks {
    /// The switches that are on, by name, for `mailferry check`.
    pub fn names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.no_condstore {
            v.push("no-condstore");
        }
        if self.body_item != BodyItem::default() {
            v.push("fetch-rfc822");
        }
        if self.flag_after_append {
            v.push("flag-after-append");
        }
        v
    }
}
