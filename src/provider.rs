//! Provider profiles: what mailferry knows about the big mail providers
//! so that `provider = "gmail"` and a user name is a whole account, and a
//! URL on one of their hosts gets their limits without being asked.
//!
//! A profile holds the servers (host, ports), which OAuth provider signs
//! in (the OAuth module does the signing in), a connection cap, size
//! limits, daily transfer budgets and the quirk switches of the IMAP
//! layer. Anything an account sets explicitly wins over its profile.
//! The figures and their sources are in README.md, "Providers".

use crate::imap::{BodyItem, Quirks};

/// One provider's servers, limits and quirks.
#[derive(Debug, PartialEq, Eq)]
pub struct Profile {
    /// What `provider = "…"` names.
    pub name: &'static str,
    /// For people: "Gmail", "Microsoft 365".
    pub title: &'static str,
    /// IMAP over TLS: host and port.
    pub imap: Option<(&'static str, u16)>,
    /// POP3 over TLS; `None` when the provider has no POP3 (iCloud).
    pub pop3: Option<(&'static str, u16)>,
    /// Host names that select this profile on their own (lowercase).
    pub hosts: &'static [&'static str],
    /// The OAuth2 provider that signs accounts in (`mailferry login`),
    /// when the provider wants OAuth rather than (app) passwords.
    pub oauth: Option<&'static str>,
    /// Connections per account mailferry opens at most, below the
    /// provider's hard limit: other clients of the account need some.
    pub max_connections: u16,
    /// Bytes a day it lets one account download over IMAP/POP3.
    pub daily_download: Option<u64>,
    /// Bytes a day it lets one account upload (APPEND).
    pub daily_upload: Option<u64>,
    /// What its servers must not be trusted with.
    pub quirks: Quirks,
}

const STANDARD: Quirks = Quirks {
    no_condstore: false,
    body_item: BodyItem::BodyPeek,
    flag_after_append: false,
    append_limit: None,
};

/// Every profile, in the order README lists them.
pub static PROFILES: &[Profile] = &[
    Profile {
        name: "gmail",
        title: "Gmail",
        imap: Some(("imap.gmail.com", 993)),
        pop3: Some(("pop.gmail.com", 995)),
        hosts: &[
            "imap.gmail.com",
            "pop.gmail.com",
            "imap.googlemail.com",
            "pop.googlemail.com",
        ],
        oauth: Some("google"),
        // Google allows 15 simultaneous IMAP connections per account.
        max_connections: 10,
        // Google's IMAP bandwidth limits: 2,500 MB down, 500 MB up a day.
        daily_download: Some(2_500_000_000),
        daily_upload: Some(500_000_000),
        quirks: Quirks {
            append_limit: Some(35_651_584),
            ..STANDARD
        },
    },
    Profile {
        name: "microsoft365",
        title: "Microsoft 365 / Outlook.com",
        imap: Some(("outlook.office365.com", 993)),
        pop3: Some(("outlook.office365.com", 995)),
        hosts: &[
            "outlook.office365.com",
            "outlook.office.com",
            "imap-mail.outlook.com",
            "pop-mail.outlook.com",
        ],
        oauth: Some("microsoft"),
        // Exchange Online allows 16 per mailbox but throttles ("Suggested
        // Backoff Time") well before; imapsync's --office settings and
        // migration vendors stay at about 4.
        max_connections: 4,
        daily_download: None,
        daily_upload: None,
        quirks: Quirks {
            no_condstore: true,
            flag_after_append: true,
            ..STANDARD
        },
    },
    Profile {
        name: "yahoo",
        title: "Yahoo Mail",
        imap: Some(("imap.mail.yahoo.com", 993)),
        pop3: Some(("pop.mail.yahoo.com", 995)),
        hosts: &[
            "imap.mail.yahoo.com",
            "pop.mail.yahoo.com",
            "export.imap.mail.yahoo.com",
        ],
        oauth: None,
        max_connections: 4,
        daily_download: None,
        daily_upload: None,
        quirks: Quirks {
            // [HIGHESTMODSEQ] on SELECT, but only XYMHIGHESTMODSEQ behind it.
            no_condstore: true,
            ..STANDARD
        },
    },
    Profile {
        name: "icloud",
        title: "iCloud Mail",
        imap: Some(("imap.mail.me.com", 993)),
        pop3: None,
        hosts: &["imap.mail.me.com"],
        oauth: None,
        max_connections: 4,
        daily_download: None,
        daily_upload: None,
        quirks: Quirks {
            // Pinned: to RFC822 iCloud answers without the message.
            body_item: BodyItem::BodyPeek,
            ..STANDARD
        },
    },
    Profile {
        name: "fastmail",
        title: "Fastmail",
        imap: Some(("imap.fastmail.com", 993)),
        pop3: Some(("pop.fastmail.com", 995)),
        hosts: &["imap.fastmail.com", "pop.fastmail.com"],
        oauth: None,
        max_connections: 8,
        daily_download: None,
        daily_upload: None,
        quirks: STANDARD,
    },
];

/// The profile `provider = "name"` means.
pub fn by_name(name: &str) -> Option<&'static Profile> {
    PROFILES.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

/// The profile whose servers these are, if any.
pub fn by_host(host: &str) -> Option<&'static Profile> {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    PROFILES.iter().find(|p| p.hosts.contains(&h.as_str()))
}

/// The names, for error messages.
pub fn names() -> String {
    PROFILES
        .iter()
        .map(|p| format!("{:?}", p.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How a profile came to apply to an account, for `mailferry check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// `provider = "…"` in the config.
    Named,
    /// The URL's host is one of the profile's.
    ByHost,
}

/// A profile as applied to one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileUse {
    pub profile: &'static Profile,
    pub applied: Applied,
}

impl ProfileUse {
    /// "gmail (by host imap.gmail.com)" / "gmail (provider = \"gmail\")".
    pub fn describe(&self, host: &str) -> String {
        match self.applied {
            Applied::Named => format!("{} (provider = {:?})", self.profile.name, self.profile.name),
            Applied::ByHost => format!("{} (detected by host {host})", self.profile.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_hosts_find_their_profile() {
        assert_eq!(
            by_name("Gmail").unwrap().imap,
            Some(("imap.gmail.com", 993))
        );
        assert_eq!(by_host("IMAP.gmail.com.").unwrap().name, "gmail");
        assert_eq!(
            by_host("outlook.office365.com").unwrap().name,
            "microsoft365"
        );
        assert!(by_host("imap.example.com").is_none());
        assert!(by_name("aol").is_none());
        assert!(by_name("icloud").unwrap().pop3.is_none());
        assert!(names().contains("\"fastmail\""));
    }

    #[test]
    fn every_profile_is_complete_and_its_hosts_are_its_own() {
        for p in PROFILES {
            let (host, port) = p.imap.expect("every profile has IMAP");
            assert_eq!(port, 993, "{}", p.name);
            assert_eq!(by_host(host).map(|q| q.name), Some(p.name));
            if let Some((h, port)) = p.pop3 {
                assert_eq!(port, 995);
                assert_eq!(by_host(h).map(|q| q.name), Some(p.name));
            }
            assert!(p.max_connections >= 1);
            // `auth = "oauth2"` signs in with it (config/oauth.rs).
            if let Some(o) = p.oauth {
                assert_eq!(crate::oauth::Provider::parse(o).unwrap().name(), o);
            }
        }
        let g = by_name("gmail").unwrap();
        assert_eq!(g.quirks.append_limit, Some(35_651_584));
        assert_eq!(
            (g.daily_download, g.daily_upload),
            (Some(2_500_000_000), Some(500_000_000))
        );
        assert!(by_name("microsoft365").unwrap().quirks.flag_after_append);
        assert!(by_name("yahoo").unwrap().quirks.no_condstore);
    }
}
