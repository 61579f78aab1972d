//! Server capabilities, parsed once so the rest of the client asks
//! "can I pipeline APPEND?" instead of searching strings.

/// What the server advertised. The bools are the extensions mailferry's
/// fast paths and safety rules depend on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    atoms: Vec<String>,
    /// RFC 7162: HIGHESTMODSEQ, CHANGEDSINCE (also implied by QRESYNC).
    pub condstore: bool,
    /// RFC 7162: VANISHED instead of re-listing UIDs.
    pub qresync: bool,
    /// RFC 4315: UID EXPUNGE and APPENDUID; required before deleting.
    pub uidplus: bool,
    /// RFC 7888 `LITERAL+`: non-synchronizing literals of any size.
    pub literal_plus: bool,
    /// RFC 7888 `LITERAL-`: non-synchronizing literals up to 4096 bytes.
    pub literal_minus: bool,
    pub multiappend: bool,
    /// RFC 6851 MOVE.
    pub move_: bool,
    pub special_use: bool,
    /// RFC 6154 `CREATE-SPECIAL-USE`: `CREATE name (USE (\Sent))`.
    pub create_special_use: bool,
    /// RFC 5464 `METADATA` (per-mailbox entries, such as
    /// `/private/specialuse`).
    pub metadata: bool,
    pub list_extended: bool,
    pub namespace: bool,
    /// RFC 7889: the largest message the server accepts, if global.
    pub appendlimit: Option<u64>,
    pub idle: bool,
    pub compress: bool,
    pub starttls: bool,
    pub logindisabled: bool,
    pub sasl_ir: bool,
    pub enable: bool,
}

impl Capabilities {
    /// Builds from capability atoms (`IMAP4rev1`, `AUTH=PLAIN`, …).
    pub fn from_atoms<S: AsRef<str>>(atoms: impl IntoIterator<Item = S>) -> Capabilities {
        let atoms: Vec<String> = atoms
            .into_iter()
            .map(|a| a.as_ref().to_ascii_uppercase())
            .filter(|a| !a.is_empty() && a != "CAPABILITY")
            .collect();
        let has = |n: &str| atoms.iter().any(|a| a == n);
        let qresync = has("QRESYNC");
        Capabilities {
            condstore: has("CONDSTORE") || qresync,
            qresync,
            uidplus: has("UIDPLUS"),
            literal_plus: has("LITERAL+"),
            literal_minus: has("LITERAL-"),
            multiappend: has("MULTIAPPEND"),
            move_: has("MOVE"),
            special_use: has("SPECIAL-USE"),
            create_special_use: has("CREATE-SPECIAL-USE"),
            metadata: has("METADATA"),
            list_extended: has("LIST-EXTENDED"),
            namespace: has("NAMESPACE"),
            appendlimit: atoms
                .iter()
                .find_map(|a| a.strip_prefix("APPENDLIMIT=")?.parse().ok()),
            idle: has("IDLE"),
            compress: has("COMPRESS=DEFLATE"),
            starttls: has("STARTTLS"),
            logindisabled: has("LOGINDISABLED"),
            sasl_ir: has("SASL-IR"),
            enable: has("ENABLE"),
            atoms,
        }
    }

    /// Parses a `CAPABILITY a b c` text (the word itself optional).
    pub fn parse(text: &str) -> Capabilities {
        Capabilities::from_atoms(text.split_ascii_whitespace())
    }

    /// Any capability by name, case-insensitive.
    pub fn has(&self, name: &str) -> bool {
        let n = name.to_ascii_uppercase();
        self.atoms.contains(&n)
    }

    /// SASL mechanism offered as `AUTH=<mech>`.
    pub fn has_auth(&self, mech: &str) -> bool {
        self.has(&format!("AUTH={mech}"))
    }

    /// The same capabilities minus `names` (quirks: an extension a
    /// server advertises but does not implement safely).
    pub fn without(&self, names: &[&str]) -> Capabilities {
        Capabilities::from_atoms(
            self.atoms
                .iter()
                .filter(|a| !names.iter().any(|n| a.eq_ignore_ascii_case(n))),
        )
    }

    /// Everything advertised, uppercased, for `mailferry check`.
    pub fn atoms(&self) -> &[String] {
        &self.atoms
    }

    /// The offered SASL mechanisms, for error messages.
    pub fn auth_mechanisms(&self) -> Vec<&str> {
        self.atoms
            .iter()
            .filter_map(|a| a.strip_prefix("AUTH="))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dovecot_capabilities() {
        let c = Capabilities::parse(
            "CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT LITERAL+ \
             MOVE CONDSTORE QRESYNC UIDPLUS SPECIAL-USE LIST-EXTENDED NAMESPACE \
             APPENDLIMIT=35651584 AUTH=PLAIN",
        );
        assert!(c.condstore && c.qresync && c.uidplus && c.literal_plus && c.move_);
        assert!(c.has("id") && c.has_auth("plain") && !c.has_auth("XOAUTH2"));
        assert_eq!(c.appendlimit, Some(35651584));
        assert!(!c.starttls && !c.literal_minus && !c.compress);
        assert!(c.special_use && !c.create_special_use && !c.metadata);
        let cyrus = Capabilities::parse("IMAP4rev1 CREATE-SPECIAL-USE METADATA SPECIAL-USE");
        assert!(cyrus.create_special_use && cyrus.metadata);
        assert!(!Capabilities::parse("METADATA-SERVER").metadata);
        assert_eq!(c.auth_mechanisms(), vec!["PLAIN"]);
        assert!(Capabilities::parse("IMAP4rev1 QRESYNC").condstore);
        let masked = c.without(&["CONDSTORE", "QRESYNC"]);
        assert!(!masked.condstore && !masked.qresync && masked.uidplus);
        assert!(!masked.has("CONDSTORE") && masked.has("ID"));
    }
}
