//! Folder mapping for `push` and `verify`: which target folder each source
//! folder goes to. Pure: the caller passes both listings and namespaces.
//!
//! Names are decoded and `/`-separated on both sides (the IMAP layer turns
//! each server's delimiter and modified UTF-7 into that), so a hierarchy
//! separator difference (`.` vs `/`) needs no work here. What does:
//!
//! 1. `--map OLD=NEW` rules, first match wins. OLD is matched against the
//!    source folder name exactly as `--folder` sees it (with any namespace
//!    prefix): `*` matches within one level, `**` across levels, `?` one
//!    character. Each wildcard's text is substituted, in order, for the
//!    wildcards of NEW (`--map 'Old/*=Archive/*'`). NEW is a name below the
//!    target's personal namespace: its prefix (`INBOX.` on Courier/Cyrus)
//!    is added unless NEW already starts with it or is INBOX.
//! 2. Special-use: a source folder with `\Sent` (`\Drafts`, `\Trash`,
//!    `\Junk`, `\Archive`) goes to the target's folder with the same
//!    attribute, whatever its name.
//! 3. Otherwise the same name: the source's namespace prefix is removed and
//!    the target's added. INBOX is INBOX.
//!
//! A folder created by rule 3 for a source folder with a role no target
//! folder has yet gets that role (`role`), so the target's new Sent is its
//! Sent for every client: once per role, and never for a `--map` target
//! (the user chose the place, not the role).

use std::collections::HashMap;

use crate::imap::SpecialUse;
use crate::types::FolderName;

/// One folder as a server lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderInfo {
    pub name: FolderName,
    pub special_use: Option<SpecialUse>,
}

/// A `--map OLD=NEW` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapRule {
    pub old: String,
    pub new: String,
}

impl MapRule {
    /// Parses `OLD=NEW` (split at the first `=`). `/regex/=…` is refused
    /// with a clear message: globs only.
    pub fn parse(s: &str) -> Result<MapRule, String> {
        let Some((old, new)) = s.split_once('=') else {
            return Err(format!("--map {s:?}: expected OLD=NEW"));
        };
        if old.starts_with('/') && old.len() > 1 && old.ends_with('/') {
            return Err(format!(
                "--map {s:?}: regular expressions are not supported; use * and ** globs"
            ));
        }
        let (old, new) = (old.trim_matches('/'), new.trim_matches('/'));
        if old.is_empty() || new.is_empty() {
            return Err(format!("--map {s:?}: OLD and NEW must not be empty"));
        }
        let stars = |p: &str| wildcards(p).len();
        if stars(new) > stars(old) {
            return Err(format!(
                "--map {s:?}: NEW has more wildcards than OLD ({} > {})",
                stars(new),
                stars(old)
            ));
        }
        Ok(MapRule {
            old: old.to_string(),
            new: new.to_string(),
        })
    }

    /// The target name (below the target namespace) if OLD matches.
    fn apply(&self, name: &str) -> Option<String> {
        let caps = capture(&self.old, name)?;
        let mut out = String::new();
        let mut it = caps.into_iter();
        let mut rest = self.new.as_str();
        while let Some(pos) = rest.find(['*', '?']) {
            out.push_str(&rest[..pos]);
            let w = if rest[pos..].starts_with("**") { 2 } else { 1 };
            out.push_str(&it.next().unwrap_or_default());
            rest = &rest[pos + w..];
        }
        out.push_str(rest);
        Some(out)
    }
}

/// Why a folder goes where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapReason {
    /// Same name (namespace prefixes and separators translated).
    Name,
    /// Matched by special-use attribute.
    SpecialUse(SpecialUse),
    /// A `--map` rule (its text).
    Rule(String),
}

impl std::fmt::Display for MapReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MapReason::Name => f.write_str("same name"),
            MapReason::SpecialUse(u) => write!(f, "special-use \\{u:?}"),
            MapReason::Rule(r) => write!(f, "--map {r}"),
        }
    }
}

/// Where one source folder goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderMap {
    pub source: FolderName,
    pub target: FolderName,
    pub reason: MapReason,
    /// The target folder is listed already (else it will be created).
    pub exists: bool,
    /// The special-use to create the target folder with (see the module
    /// doc); `None` for existing folders.
    pub role: Option<SpecialUse>,
}

/// Maps every source folder (in order) to its target folder.
/// `src_prefix`/`dst_prefix`: decoded personal-namespace prefixes
/// (`INBOX/` for a wire `INBOX.`, or empty).
pub fn map_folders(
    source: &[FolderInfo],
    src_prefix: &str,
    target: &[FolderInfo],
    dst_prefix: &str,
    rules: &[MapRule],
) -> Vec<FolderMap> {
    let mut by_use: HashMap<SpecialUse, &FolderName> = HashMap::new();
    for t in target {
        if let Some(u) = t.special_use {
            by_use.entry(u).or_insert(&t.name);
        }
    }
    let exists = |n: &FolderName| target.iter().any(|t| &t.name == n);
    let mut given: Vec<(SpecialUse, FolderName)> = Vec::new();
    source
        .iter()
        .map(|s| {
            let (target, reason) = if let Some((r, new)) = rules
                .iter()
                .find_map(|r| r.apply(s.name.as_str()).map(|n| (r, n)))
            {
                (
                    add_prefix(&new, dst_prefix),
                    MapReason::Rule(format!("{}={}", r.old, r.new)),
                )
            } else if let Some(u) = s.special_use.filter(|u| mapped_by_use(*u))
                && let Some(t) = by_use.get(&u)
            {
                ((*t).clone(), MapReason::SpecialUse(u))
            } else {
                let logical = strip_prefix(s.name.as_str(), src_prefix);
                (add_prefix(logical, dst_prefix), MapReason::Name)
            };
            let exists = exists(&target);
            let role = s
                .special_use
                .filter(|u| {
                    !exists
                        && reason == MapReason::Name
                        && mapped_by_use(*u)
                        && !by_use.contains_key(u)
                        && !target.is_inbox()
                })
                .filter(|u| {
                    // One folder per role; another source folder going to
                    // the same new target adds nothing.
                    !given.iter().any(|(g, t)| g == u || t == &target)
                });
            if let Some(u) = role {
                given.push((u, target.clone()));
            }
            FolderMap {
                source: s.name.clone(),
                exists,
                target,
                reason,
                role,
            }
        })
        .collect()
}

/// The role a folder's name implies, for sources without attributes (a
/// Maildir): the top-level Sent, Drafts, Trash, Junk and Archive, in any
/// case. Nested folders and other spellings keep their name.
pub fn special_use_by_name(name: &FolderName) -> Option<SpecialUse> {
    Some(match name.as_str().to_ascii_lowercase().as_str() {
        "sent" => SpecialUse::Sent,
        "drafts" => SpecialUse::Drafts,
        "trash" => SpecialUse::Trash,
        "junk" => SpecialUse::Junk,
        "archive" => SpecialUse::Archive,
        _ => return None,
    })
}

/// The roles SPEC §2 maps by attribute. `\All` and `\Flagged` are virtual
/// views on most servers, never a place to copy into.
fn mapped_by_use(u: SpecialUse) -> bool {
    matches!(
        u,
        SpecialUse::Sent
            | SpecialUse::Drafts
            | SpecialUse::Trash
            | SpecialUse::Junk
            | SpecialUse::Archive
    )
}

/// A folder's name below the personal namespace (`INBOX/Archive` with
/// prefix `INBOX/` is `Archive`), as fetch names the Maildir folder and as
/// `--folder` sees it: a backup of a Cyrus or Courier account must look
/// like one of a Dovecot account, and restore to either. A name that
/// would become INBOX (`INBOX.INBOX`) keeps its prefix, so it cannot
/// collide with the real INBOX.
pub fn strip_namespace(name: &FolderName, prefix: &str) -> FolderName {
    let rest = strip_prefix(name.as_str(), prefix);
    let n = FolderName::new(rest);
    if n.is_inbox() && !name.is_inbox() {
        return name.clone();
    }
    n
}

fn strip_prefix<'a>(name: &'a str, prefix: &str) -> &'a str {
    if prefix.is_empty() || name == "INBOX" {
        return name;
    }
    match name.strip_prefix(prefix) {
        Some(rest) if !rest.is_empty() => rest,
        _ => name,
    }
}

fn add_prefix(name: &str, prefix: &str) -> FolderName {
    let n = FolderName::new(name);
    if prefix.is_empty() || n.is_inbox() || name.starts_with(prefix) {
        return n;
    }
    FolderName::new(format!("{prefix}{name}"))
}

/// The wildcard tokens of a pattern (`**`, `*`, `?`), in order.
fn wildcards(p: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = p;
    while let Some(pos) = rest.find(['*', '?']) {
        let w = if rest[pos..].starts_with("**") { 2 } else { 1 };
        out.push(&rest[pos..pos + w]);
        rest = &rest[pos + w..];
    }
    out
}

/// Matches the whole of `s` against `p`, returning each wildcard's text.
/// INBOX as the first level matches case-insensitively.
fn capture(p: &str, s: &str) -> Option<Vec<String>> {
    let (p, s) = (p.chars().collect::<Vec<_>>(), s.chars().collect::<Vec<_>>());
    let mut caps = Vec::new();
    let fold = |v: &[char]| -> Vec<char> {
        let head: String = v.iter().take_while(|&&c| c != '/').collect();
        if head.eq_ignore_ascii_case("INBOX") {
            let mut o: Vec<char> = "INBOX".chars().collect();
            o.extend_from_slice(&v[5..]);
            o
        } else {
            v.to_vec()
        }
    };
    let (p, s) = (fold(&p), fold(&s));
    cap(&p, &s, &mut caps).then_some(caps)
}

fn cap(p: &[char], s: &[char], caps: &mut Vec<String>) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some('*') => {
            let deep = p.get(1) == Some(&'*');
            let rest = if deep { &p[2..] } else { &p[1..] };
            for i in 0..=s.len() {
                let n = caps.len();
                caps.push(s[..i].iter().collect());
                if cap(rest, &s[i..], caps) {
                    return true;
                }
                caps.truncate(n);
                if !deep && i < s.len() && s[i] == '/' {
                    break;
                }
            }
            false
        }
        Some('?') => {
            if s.is_empty() || s[0] == '/' {
                return false;
            }
            caps.push(s[0].to_string());
            if cap(&p[1..], &s[1..], caps) {
                return true;
            }
            caps.pop();
            false
        }
        Some(c) => !s.is_empty() && s[0] == *c && cap(&p[1..], &s[1..], caps),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, u: Option<SpecialUse>) -> FolderInfo {
        FolderInfo {
            name: FolderName::new(name),
            special_use: u,
        }
    }

    fn target_of<'a>(m: &'a [FolderMap], src: &str) -> &'a FolderMap {
        m.iter().find(|x| x.source.as_str() == src).unwrap()
    }

    #[test]
    fn same_names_across_separators_and_inbox() {
        // Names arrive decoded with '/', whatever each server's delimiter.
        let src = [
            f("INBOX", None),
            f("Archive/2024", None),
            f("日本語/子", None),
        ];
        let dst = [f("INBOX", None), f("Archive", None)];
        let m = map_folders(&src, "", &dst, "", &[]);
        assert_eq!(m[0].target.as_str(), "INBOX");
        assert!(m[0].exists);
        assert_eq!(m[1].target.as_str(), "Archive/2024");
        assert!(!m[1].exists);
        assert_eq!(m[2].target.as_str(), "日本語/子");
        assert!(m.iter().all(|x| x.reason == MapReason::Name));
    }

    #[test]
    fn strip_namespace_keeps_inbox_and_names_outside_the_prefix() {
        let s = |n: &str| strip_namespace(&FolderName::new(n), "INBOX/").to_string();
        assert_eq!(s("INBOX/Archive/2024"), "Archive/2024");
        assert_eq!(s("INBOX"), "INBOX");
        assert_eq!(s("INBOX/INBOX"), "INBOX/INBOX");
        assert_eq!(s("Shared/x"), "Shared/x");
        assert_eq!(
            strip_namespace(&FolderName::new("Sent"), "").to_string(),
            "Sent"
        );
    }

    #[test]
    fn namespace_prefixes_are_swapped() {
        // Courier-style source (INBOX.) to a root-namespace target, and back.
        let src = [f("INBOX", None), f("INBOX/Work/Q1", None)];
        let m = map_folders(&src, "INBOX/", &[], "", &[]);
        assert_eq!(m[0].target.as_str(), "INBOX");
        assert_eq!(m[1].target.as_str(), "Work/Q1");
        let src = [f("INBOX", None), f("Work/Q1", None)];
        let m = map_folders(&src, "", &[], "INBOX/", &[]);
        assert_eq!(m[0].target.as_str(), "INBOX");
        assert_eq!(m[1].target.as_str(), "INBOX/Work/Q1");
    }

    #[test]
    fn special_use_wins_over_name() {
        let src = [
            f("Sent", Some(SpecialUse::Sent)),
            f("Gelöscht", Some(SpecialUse::Trash)),
            f("Junk", Some(SpecialUse::Junk)),
            f("All Mail", Some(SpecialUse::All)),
        ];
        let dst = [
            f("INBOX/Sent Items", Some(SpecialUse::Sent)),
            f("Deleted Items", Some(SpecialUse::Trash)),
            f("All", Some(SpecialUse::All)),
        ];
        let m = map_folders(&src, "", &dst, "INBOX/", &[]);
        assert_eq!(target_of(&m, "Sent").target.as_str(), "INBOX/Sent Items");
        assert_eq!(
            target_of(&m, "Sent").reason,
            MapReason::SpecialUse(SpecialUse::Sent)
        );
        assert!(target_of(&m, "Sent").exists);
        assert_eq!(target_of(&m, "Gelöscht").target.as_str(), "Deleted Items");
        // No \Junk on the target: by name, below the target prefix.
        assert_eq!(target_of(&m, "Junk").target.as_str(), "INBOX/Junk");
        assert_eq!(target_of(&m, "Junk").reason, MapReason::Name);
        // \All is a view, never mapped by attribute.
        assert_eq!(target_of(&m, "All Mail").target.as_str(), "INBOX/All Mail");
    }

    #[test]
    fn a_created_folder_gets_a_role_no_target_folder_has() {
        let src = [
            f("Sent", Some(SpecialUse::Sent)),
            f("Old Sent", Some(SpecialUse::Sent)),
            f("Drafts", Some(SpecialUse::Drafts)),
            f("Trash", Some(SpecialUse::Trash)),
            f("Junk", Some(SpecialUse::Junk)),
            f("All Mail", Some(SpecialUse::All)),
            f("Archive", Some(SpecialUse::Archive)),
        ];
        // The target has a \Trash already, and a plain Junk folder.
        let dst = [
            f("INBOX/Deleted", Some(SpecialUse::Trash)),
            f("INBOX/Junk", None),
        ];
        let rules = [MapRule::parse("Archive=Saved").unwrap()];
        let m = map_folders(&src, "", &dst, "INBOX/", &rules);
        let role = |n: &str| target_of(&m, n).role;
        assert_eq!(role("Sent"), Some(SpecialUse::Sent));
        assert_eq!(target_of(&m, "Sent").target.as_str(), "INBOX/Sent");
        assert_eq!(role("Old Sent"), None, "one folder per role");
        assert_eq!(role("Drafts"), Some(SpecialUse::Drafts));
        assert_eq!(target_of(&m, "Trash").target.as_str(), "INBOX/Deleted");
        assert_eq!(role("Trash"), None, "the target's own \\Trash");
        assert_eq!(role("Junk"), None, "an existing folder keeps what it has");
        assert_eq!(role("All Mail"), None, "\\All is a view");
        assert_eq!(role("Archive"), None, "a --map target is the user's choice");
    }

    #[test]
    fn map_rules_override_with_wildcards() {
        let rules: Vec<MapRule> = ["Old/*=Archive/Old-*", "Sent=Sent Copy", "Deep/**=D/**"]
            .iter()
            .map(|r| MapRule::parse(r).unwrap())
            .collect();
        let src = [
            f("Old/2019", None),
            f("Old/2019/x", None),
            f("Sent", Some(SpecialUse::Sent)),
            f("Deep/a/b", None),
        ];
        let dst = [f("Sent Items", Some(SpecialUse::Sent))];
        let m = map_folders(&src, "", &dst, "", &rules);
        assert_eq!(m[0].target.as_str(), "Archive/Old-2019");
        assert!(matches!(m[0].reason, MapReason::Rule(_)));
        // `*` stays within one level.
        assert_eq!(m[1].target.as_str(), "Old/2019/x");
        assert_eq!(m[2].target.as_str(), "Sent Copy");
        assert_eq!(m[3].target.as_str(), "D/a/b");
        // The target prefix is added to NEW unless already there.
        let m = map_folders(&src[..1], "", &[], "INBOX/", &rules);
        assert_eq!(m[0].target.as_str(), "INBOX/Archive/Old-2019");
        let r = [MapRule::parse("Old/*=INBOX/X/*").unwrap()];
        let m = map_folders(&src[..1], "", &[], "INBOX/", &r);
        assert_eq!(m[0].target.as_str(), "INBOX/X/2019");
    }

    #[test]
    fn well_known_names_imply_special_use() {
        let n = |s: &str| special_use_by_name(&FolderName::new(s));
        assert_eq!(n("Sent"), Some(SpecialUse::Sent));
        assert_eq!(n("trash"), Some(SpecialUse::Trash));
        assert_eq!(n("Archive"), Some(SpecialUse::Archive));
        assert_eq!(n("Archive/2024"), None);
        assert_eq!(n("Sent Items"), None);
        assert_eq!(n("INBOX"), None);
    }

    #[test]
    fn map_rule_parsing() {
        assert!(MapRule::parse("a").is_err());
        assert!(MapRule::parse("=b").is_err());
        assert!(MapRule::parse("a=*").is_err());
        assert!(MapRule::parse("/^x(.*)/=y").is_err());
        let r = MapRule::parse("inbox/*=*").unwrap();
        assert_eq!(r.apply("INBOX/foo").as_deref(), Some("foo"));
        assert_eq!(r.apply("INBOX/foo/bar"), None);
    }
}
