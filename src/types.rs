//! Newtypes that keep protocol identities apart: a UID is not a sequence
//! number, a UIDL is not a Message-ID, a decoded folder name is not its
//! modified-UTF-7 wire form nor its Maildir++ directory name.

use std::fmt;

/// IMAP message UID (RFC 9051 §2.3.1.1): stable only together with the
/// folder's [`UidValidity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uid(pub u32);

/// IMAP UIDVALIDITY: when it changes, every stored UID of the folder is void.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UidValidity(pub u32);

/// CONDSTORE modification sequence (RFC 7162); lets a rerun skip a folder
/// whose HIGHESTMODSEQ did not move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ModSeq(pub u64);

/// POP3 unique-id listing value (RFC 1939 §7): 1–70 printable ASCII chars.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uidl(pub String);

/// A folder name as the user sees it: decoded Unicode, `/` as the hierarchy
/// separator whatever the server uses, `INBOX` for the inbox. Encoding to the
/// wire (modified UTF-7, server separator) or to disk (Maildir++ `.A.B`) is
/// done by the endpoint that needs it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FolderName(String);

impl FolderName {
    /// The inbox, which IMAP names case-insensitively.
    pub fn inbox() -> FolderName {
        FolderName("INBOX".into())
    }

    /// Wraps a decoded, `/`-separated name; an `inbox` in any case becomes `INBOX`.
    pub fn new(name: impl Into<String>) -> FolderName {
        let s: String = name.into();
        if s.eq_ignore_ascii_case("INBOX") {
            FolderName::inbox()
        } else {
            FolderName(s)
        }
    }

    /// The decoded name, `/`-separated.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for the inbox.
    pub fn is_inbox(&self) -> bool {
        self.0 == "INBOX"
    }

    /// The `/`-separated components.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

impl fmt::Display for FolderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for UidValidity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for Uidl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The standard flags mailferry carries between IMAP and Maildir, plus
/// keywords. Stored as a bit set so comparing server and local flags is cheap.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Flags {
    pub seen: bool,
    pub answered: bool,
    pub flagged: bool,
    pub deleted: bool,
    pub draft: bool,
    /// IMAP keywords (`$Forwarded`, `$Junk`, user words). In a Maildir they
    /// are Dovecot's letters `a`–`z` per the folder's `dovecot-keywords`
    /// ([`crate::maildir::FolderKeywords`]), not [`Flags::to_maildir`].
    pub keywords: Vec<String>,
}

impl Flags {
    /// Parses IMAP flag atoms (`\Seen`, `$Forwarded`); `\Recent` is session-only and dropped.
    pub fn from_imap<'a>(atoms: impl IntoIterator<Item = &'a str>) -> Flags {
        let mut f = Flags::default();
        for a in atoms {
            match a.to_ascii_lowercase().as_str() {
                "\\seen" => f.seen = true,
                "\\answered" => f.answered = true,
                "\\flagged" => f.flagged = true,
                "\\deleted" => f.deleted = true,
                "\\draft" => f.draft = true,
                "\\recent" => {}
                _ if a.starts_with('\\') => {}
                _ => f.keywords.push(a.to_string()),
            }
        }
        f.keywords.sort();
        f.keywords.dedup();
        f
    }

    /// The IMAP flag list, e.g. `\Seen \Flagged $Forwarded`.
    pub fn to_imap(&self) -> String {
        let mut v: Vec<&str> = Vec::new();
        if self.seen {
            v.push("\\Seen");
        }
        if self.answered {
            v.push("\\Answered");
        }
        if self.flagged {
            v.push("\\Flagged");
        }
        if self.deleted {
            v.push("\\Deleted");
        }
        if self.draft {
            v.push("\\Draft");
        }
        v.extend(self.keywords.iter().map(|s| s.as_str()));
        v.join(" ")
    }

    /// Maildir info letters in ASCII order as the spec requires (`DFRST`).
    pub fn to_maildir(&self) -> String {
        let mut s = String::new();
        if self.draft {
            s.push('D');
        }
        if self.flagged {
            s.push('F');
        }
        if self.answered {
            s.push('R');
        }
        if self.seen {
            s.push('S');
        }
        if self.deleted {
            s.push('T');
        }
        s
    }

    /// Parses Maildir info letters; unknown letters are ignored.
    pub fn from_maildir(letters: &str) -> Flags {
        let mut f = Flags::default();
        for c in letters.chars() {
            match c {
                'D' => f.draft = true,
                'F' => f.flagged = true,
                'R' => f.answered = true,
                'S' => f.seen = true,
                'T' => f.deleted = true,
                _ => {}
            }
        }
        f
    }

    /// True when the standard flags (not keywords) are equal: what a Maildir can hold.
    pub fn same_standard(&self, other: &Flags) -> bool {
        self.seen == other.seen
            && self.answered == other.answered
            && self.flagged == other.flagged
            && self.deleted == other.deleted
            && self.draft == other.draft
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_round_trip_imap_and_maildir() {
        let f = Flags::from_imap(["\\Seen", "\\Flagged", "\\Recent", "$Forwarded"]);
        assert!(f.seen && f.flagged && !f.answered);
        assert_eq!(f.keywords, vec!["$Forwarded".to_string()]);
        assert_eq!(f.to_maildir(), "FS");
        assert!(Flags::from_maildir("FS").same_standard(&f));
        assert_eq!(f.to_imap(), "\\Seen \\Flagged $Forwarded");
    }

    #[test]
    fn inbox_is_case_insensitive() {
        assert!(FolderName::new("inbox").is_inbox());
        assert!(!FolderName::new("INBOX/x").is_inbox());
    }
}
