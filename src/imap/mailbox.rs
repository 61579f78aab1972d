//! Mailbox-level commands: LIST (decoded names, special-use), NAMESPACE,
//! CREATE/SUBSCRIBE, SELECT/EXAMINE and STATUS.

use std::collections::HashMap;

use super::codec::{decode_folder, encode_folder, quote};
use super::parse::{self, Status, Untagged};
use super::session::{Part, SelectedState, Session, astring};
use crate::error::{Error, Result};
use crate::types::{FolderName, ModSeq, Uid, UidValidity};

/// RFC 6154 special-use roles, so push can map Sent to Sent whatever
/// each server calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpecialUse {
    Sent,
    Drafts,
    Trash,
    Junk,
    Archive,
    All,
    Flagged,
}

impl SpecialUse {
    /// The attribute as IMAP writes it (`\Sent`).
    pub fn attr(self) -> &'static str {
        match self {
            SpecialUse::Sent => "\\Sent",
            SpecialUse::Drafts => "\\Drafts",
            SpecialUse::Trash => "\\Trash",
            SpecialUse::Junk => "\\Junk",
            SpecialUse::Archive => "\\Archive",
            SpecialUse::All => "\\All",
            SpecialUse::Flagged => "\\Flagged",
        }
    }

    fn from_attr(a: &str) -> Option<SpecialUse> {
        Some(match a.to_ascii_lowercase().as_str() {
            "\\sent" => SpecialUse::Sent,
            "\\drafts" => SpecialUse::Drafts,
            "\\trash" => SpecialUse::Trash,
            "\\junk" => SpecialUse::Junk,
            "\\archive" => SpecialUse::Archive,
            "\\all" => SpecialUse::All,
            "\\flagged" => SpecialUse::Flagged,
            _ => return None,
        })
    }
}

/// One folder as listed: the decoded name for users and mapping, and the
/// exact wire name to send back to this server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFolder {
    pub name: FolderName,
    /// Exactly what to send back (unescaped, still modified UTF-7).
    pub wire: String,
    pub delimiter: Option<char>,
    pub attributes: Vec<String>,
    pub special_use: Option<SpecialUse>,
    /// False for `\Noselect`/`\NonExistent` (hierarchy-only) entries.
    pub selectable: bool,
    /// Set when the name could not be decoded cleanly; the folder is kept
    /// (under its raw name) so one odd folder does not stop a run.
    pub warning: Option<String>,
}

/// The personal namespace: where our folders live and how they nest
/// (`INBOX.` + `.` on Courier/Cyrus, `""` + `/` on Dovecot's default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    /// Wire prefix, e.g. `INBOX.` or empty.
    pub prefix: String,
    pub delimiter: Option<char>,
}

/// What became of the special-use asked for at [`Session::create_with_role`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleOutcome {
    /// None was asked for.
    NotAsked,
    /// Given with `CREATE … (USE (…))` (RFC 6154).
    CreateUse,
    /// Given with `SETMETADATA … (/private/specialuse …)` (RFC 5464).
    Metadata,
    /// The server offers neither way: created without it.
    Unsupported,
    /// The server refused the role (its reply): created without it.
    Refused(String),
    /// The folder existed after all (made meanwhile, or as the parent of
    /// one created before it): left as it is.
    Existed,
}

/// A mailbox's state right after SELECT/EXAMINE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    pub exists: u32,
    pub uidvalidity: UidValidity,
    pub uidnext: Option<Uid>,
    pub highestmodseq: Option<ModSeq>,
    /// Flags a client may set permanently; `\*` means any new keyword.
    pub permanent_flags: Vec<String>,
    /// The server said `[NOMODSEQ]`: no CONDSTORE for this mailbox.
    pub nomodseq: bool,
    pub read_only: bool,
}

/// STATUS result: enough to decide that a folder needs no work without
/// selecting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FolderStatus {
    pub messages: u32,
    pub uidnext: Option<Uid>,
    pub uidvalidity: Option<UidValidity>,
    pub highestmodseq: Option<ModSeq>,
}

impl Session {
    /// Lists every folder, with special-use roles (`RETURN (SPECIAL-USE)`
    /// when LIST-EXTENDED is offered).
    pub async fn list_folders(&mut self) -> Result<Vec<ListedFolder>> {
        let caps = &self.st.caps;
        let cmd = if caps.special_use && caps.list_extended {
            "LIST \"\" \"*\" RETURN (SPECIAL-USE)"
        } else {
            "LIST \"\" \"*\""
        };
        let mut lines = Vec::new();
        self.run(&[Part::Text(cmd.into())], "LIST", |u| {
            if let Untagged::Other(name, c) = u
                && name.eq_ignore_ascii_case(b"LIST")
            {
                let mut c = c.clone();
                if let Some(l) = parse::parse_list(&mut c) {
                    lines.push(l);
                }
                return Ok(true);
            }
            Ok(false)
        })
        .await?;
        let mut out = Vec::with_capacity(lines.len());
        for l in lines {
            if self.st.delimiter.is_none() && l.delimiter.is_some() {
                self.st.delimiter = Some(l.delimiter);
            }
            let (name, warning) = decode_folder(&l.name, l.delimiter);
            let has = |a: &str| l.attributes.iter().any(|x| x.eq_ignore_ascii_case(a));
            out.push(ListedFolder {
                selectable: !has("\\Noselect") && !has("\\NonExistent"),
                special_use: l.attributes.iter().find_map(|a| SpecialUse::from_attr(a)),
                name,
                wire: l.name,
                delimiter: l.delimiter,
                attributes: l.attributes,
                warning,
            });
        }
        Ok(out)
    }

    /// The hierarchy delimiter (`LIST "" ""`), cached.
    pub async fn hierarchy_delimiter(&mut self) -> Result<Option<char>> {
        if let Some(d) = self.st.delimiter {
            return Ok(d);
        }
        let mut delim = None;
        self.run(&[Part::Text("LIST \"\" \"\"".into())], "LIST", |u| {
            if let Untagged::Other(name, c) = u
                && name.eq_ignore_ascii_case(b"LIST")
            {
                if let Some(l) = parse::parse_list(&mut c.clone()) {
                    delim = Some(l.delimiter);
                }
                return Ok(true);
            }
            Ok(false)
        })
        .await?;
        let d = delim.unwrap_or(None);
        self.st.delimiter = Some(d);
        Ok(d)
    }

    /// The first personal namespace (NAMESPACE, RFC 2342), or the root
    /// with the hierarchy delimiter when the server lacks NAMESPACE.
    pub async fn namespace(&mut self) -> Result<Namespace> {
        if self.st.caps.namespace {
            let mut ns = None;
            self.run(&[Part::Text("NAMESPACE".into())], "NAMESPACE", |u| {
                if let Untagged::Other(name, c) = u
                    && name.eq_ignore_ascii_case(b"NAMESPACE")
                {
                    ns = parse::parse_namespace(&mut c.clone());
                    return Ok(true);
                }
                Ok(false)
            })
            .await?;
            if let Some([personal, _, _]) = ns
                && let Some((prefix, delimiter)) = personal.into_iter().next()
            {
                return Ok(Namespace { prefix, delimiter });
            }
        }
        let delimiter = self.hierarchy_delimiter().await?;
        Ok(Namespace {
            prefix: String::new(),
            delimiter,
        })
    }

    /// The wire name `name` has on this server (mUTF-7, its delimiter);
    /// a part containing the delimiter is refused, not silently nested.
    pub async fn wire_name(&mut self, name: &FolderName) -> Result<String> {
        let d = self.hierarchy_delimiter().await?;
        encode_folder(name, d).map_err(|m| Error::Usage(format!("{}: {m}", self.io.server)))
    }

    /// CREATE; an already existing folder counts as success, because
    /// callers want "make sure it exists". Returns the wire name.
    pub async fn create(&mut self, name: &FolderName) -> Result<String> {
        let wire = self.wire_name(name).await?;
        self.create_wire(&wire, None).await?.map_err(|(e, _)| e)?;
        Ok(wire)
    }

    /// CREATE with a special-use role (RFC 6154), so the new folder is
    /// the account's Sent (Drafts, …) for every client: `CREATE name (USE
    /// (\Sent))` where the server offers CREATE-SPECIAL-USE, else CREATE
    /// and `SETMETADATA name (/private/specialuse "\\Sent")` where it
    /// offers METADATA, else a plain CREATE. A refused role never fails
    /// the CREATE: the folder is made without it and the outcome says why.
    /// An already existing folder is left as it is (no role).
    pub async fn create_with_role(
        &mut self,
        name: &FolderName,
        role: Option<SpecialUse>,
    ) -> Result<(String, RoleOutcome)> {
        let wire = self.wire_name(name).await?;
        let Some(role) = role else {
            self.create_wire(&wire, None).await?.map_err(|(e, _)| e)?;
            return Ok((wire, RoleOutcome::NotAsked));
        };
        if self.st.caps.create_special_use {
            return match self.create_wire(&wire, Some(role)).await? {
                Ok(true) => Ok((wire, RoleOutcome::CreateUse)),
                Ok(false) => Ok((wire, RoleOutcome::Existed)),
                // Refused with the role (NO [USEATTR], or a server that
                // does not parse it after all): without it.
                Err((_, refusal)) => {
                    self.create_wire(&wire, None).await?.map_err(|(e, _)| e)?;
                    Ok((wire, RoleOutcome::Refused(refusal)))
                }
            };
        }
        let created = self.create_wire(&wire, None).await?.map_err(|(e, _)| e)?;
        if !created {
            return Ok((wire, RoleOutcome::Existed));
        }
        if !self.st.caps.metadata {
            return Ok((wire, RoleOutcome::Unsupported));
        }
        let parts = [
            Part::Text("SETMETADATA ".into()),
            astring(&wire),
            Part::Text(format!(" (/private/specialuse {})", quote(role.attr()))),
        ];
        let what = format!("SETMETADATA {wire}");
        let (st, text) = self.run_status(&parts, &what, |_| Ok(false)).await?;
        Ok(match st {
            Status::Ok => (wire, RoleOutcome::Metadata),
            _ => (wire, RoleOutcome::Refused(text.display())),
        })
    }

    /// One CREATE (with `USE (role)` if given). The outer error is the
    /// connection's; the inner one a refusal, with the server's reply.
    /// `Ok(true)`: created; `Ok(false)`: it existed already —
    /// `NO [ALREADYEXISTS]`, or a NO without that code (Cyrus says only
    /// "Mailbox already exists") for a folder LIST then shows.
    async fn create_wire(
        &mut self,
        wire: &str,
        role: Option<SpecialUse>,
    ) -> Result<std::result::Result<bool, (Error, String)>> {
        let mut parts = vec![Part::Text("CREATE ".into()), astring(wire)];
        if let Some(r) = role {
            parts.push(Part::Text(format!(" (USE ({}))", r.attr())));
        }
        let what = format!("CREATE {wire}");
        let (st, text) = self.run_status(&parts, &what, |_| Ok(false)).await?;
        match st {
            Status::Ok => return Ok(Ok(true)),
            Status::No if text.code_name().as_deref() == Some("ALREADYEXISTS") => {
                return Ok(Ok(false));
            }
            Status::No if self.listed(wire).await? => return Ok(Ok(false)),
            _ => {}
        }
        let reply = text.display();
        let err = self.check(&what, st, text).expect_err("not OK");
        Ok(Err((err, reply)))
    }

    /// True when `LIST "" wire` shows that exact folder (a LIST the server
    /// refuses shows nothing: the caller's own error is the one to report).
    async fn listed(&mut self, wire: &str) -> Result<bool> {
        let parts = [Part::Text("LIST \"\" ".into()), astring(wire)];
        let mut found = false;
        let (st, _) = self
            .run_status(&parts, &format!("LIST {wire}"), |u| {
                if let Untagged::Other(name, c) = u
                    && name.eq_ignore_ascii_case(b"LIST")
                {
                    if let Some(l) = parse::parse_list(&mut c.clone()) {
                        let gone = l
                            .attributes
                            .iter()
                            .any(|a| a.eq_ignore_ascii_case("\\NonExistent"));
                        found |= l.name == wire && !gone;
                    }
                    return Ok(true);
                }
                Ok(false)
            })
            .await?;
        Ok(found && st == Status::Ok)
    }

    /// SUBSCRIBE, so created folders show up in clients that only list
    /// subscribed ones. Returns the wire name.
    pub async fn subscribe(&mut self, name: &FolderName) -> Result<String> {
        let wire = self.wire_name(name).await?;
        let parts = [Part::Text("SUBSCRIBE ".into()), astring(&wire)];
        self.run(&parts, &format!("SUBSCRIBE {wire}"), |_| Ok(false))
            .await?;
        Ok(wire)
    }

    /// SELECT (read-write), with `(CONDSTORE)` when useful.
    pub async fn select(&mut self, wire: &str) -> Result<Selected> {
        self.open(wire, false).await
    }

    /// EXAMINE (read-only): what fetch and verify use, so `\Seen` is never
    /// set by accident.
    pub async fn examine(&mut self, wire: &str) -> Result<Selected> {
        self.open(wire, true).await
    }

    async fn open(&mut self, wire: &str, read_only: bool) -> Result<Selected> {
        // A failed SELECT leaves no mailbox selected (RFC 9051 §6.3.2).
        self.st.selected = None;
        let verb = if read_only { "EXAMINE" } else { "SELECT" };
        let mut parts = vec![Part::Text(format!("{verb} ")), astring(wire)];
        let condstore_enabled = self.st.is_enabled("CONDSTORE") || self.st.is_enabled("QRESYNC");
        if self.st.caps.condstore && !condstore_enabled {
            parts.push(Part::Text(" (CONDSTORE)".into()));
        }
        let mut sel = Selected {
            exists: 0,
            uidvalidity: UidValidity(0),
            uidnext: None,
            highestmodseq: None,
            permanent_flags: Vec::new(),
            nomodseq: false,
            read_only,
        };
        let mut uidvalidity = None;
        let mut flags = Vec::new();
        let what = format!("{verb} {wire}");
        let text = self
            .run(&parts, &what, |u| {
                match u {
                    Untagged::Exists(n) => sel.exists = *n,
                    Untagged::Flags(f) => flags = f.clone(),
                    Untagged::Status(Status::Ok, t) => {
                        let args = t.code_args();
                        match t.code_name().as_deref() {
                            Some("UIDVALIDITY") => uidvalidity = args.trim().parse().ok(),
                            Some("UIDNEXT") => sel.uidnext = args.trim().parse().ok().map(Uid),
                            Some("HIGHESTMODSEQ") => {
                                sel.highestmodseq = args.trim().parse().ok().map(ModSeq)
                            }
                            Some("NOMODSEQ") => sel.nomodseq = true,
                            Some("PERMANENTFLAGS") => {
                                let mut c = parse::Cursor::new(args.as_bytes());
                                sel.permanent_flags = parse::atoms_of(c.value().as_ref());
                            }
                            _ => return Ok(false),
                        }
                    }
                    _ => return Ok(false),
                }
                Ok(true)
            })
            .await?;
        if text.code_name().as_deref() == Some("READ-ONLY") {
            sel.read_only = true;
        }
        if self.st.quirks.no_condstore {
            // Yahoo sends one without CONDSTORE behind it: never a sync point.
            sel.highestmodseq = None;
        }
        let Some(uv) = uidvalidity else {
            return Err(Error::protocol(
                &self.io.server,
                format!("{what}: the server sent no UIDVALIDITY; cannot track messages safely"),
            ));
        };
        sel.uidvalidity = UidValidity(uv);
        if sel.permanent_flags.is_empty() {
            // RFC 9051: without PERMANENTFLAGS, all FLAGS are permanent.
            sel.permanent_flags = flags;
        }
        self.st.selected = Some(SelectedState {
            wire: wire.to_string(),
            read_only: sel.read_only,
            permanent_flags: sel.permanent_flags.clone(),
            exists: sel.exists,
        });
        Ok(sel)
    }

    fn status_items(&self) -> &'static str {
        if self.st.caps.condstore {
            " (MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ)"
        } else {
            " (MESSAGES UIDNEXT UIDVALIDITY)"
        }
    }

    /// STATUS of one folder without selecting it.
    pub async fn status(&mut self, wire: &str) -> Result<FolderStatus> {
        let mut r = self.status_many(&[wire]).await?;
        r.pop().expect("one result per folder")
    }

    /// STATUS of many folders pipelined in one round trip per window, so a
    /// no-op rerun over 200 folders costs milliseconds. Per-folder NO (e.g.
    /// deleted meanwhile) is that folder's error.
    pub async fn status_many(&mut self, wires: &[&str]) -> Result<Vec<Result<FolderStatus>>> {
        let mut out = Vec::with_capacity(wires.len());
        let items = self.status_items();
        for window in wires.chunks(64) {
            let mut tags: HashMap<String, usize> = HashMap::new();
            let mut sync_needed = false;
            for (i, w) in window.iter().enumerate() {
                let arg = astring(w);
                if let Part::Lit(b) = &arg
                    && !self.nonsync_ok(b.len())
                {
                    sync_needed = true;
                }
                let t =
                    self.queue_cmd(&[Part::Text("STATUS ".into()), arg, Part::Text(items.into())]);
                tags.insert(t, i);
            }
            if sync_needed {
                // Rare (8-bit wire names without LITERAL+): fall back to one at a time.
                self.io.queue_clear();
                for w in window {
                    out.push(self.status_one_sync(w).await);
                }
                continue;
            }
            self.io.ctx = format!("STATUS of {} folders", window.len());
            self.io.flush().await?;
            let mut got: Vec<(String, Vec<(String, u64)>)> = Vec::new();
            let mut results: Vec<Option<Result<FolderStatus>>> = Vec::new();
            results.resize_with(window.len(), || None);
            let mut remaining = window.len();
            while remaining > 0 {
                let step = self
                    .read_step(&mut |u| {
                        if let Untagged::Other(name, c) = u
                            && name.eq_ignore_ascii_case(b"STATUS")
                        {
                            if let Some(x) = parse::parse_status_data(&mut c.clone()) {
                                got.push(x);
                            }
                            return Ok(true);
                        }
                        Ok(false)
                    })
                    .await?;
                match step {
                    super::session::Step::Tagged { tag, status, text } => {
                        let Some(&i) = tags.get(&tag) else {
                            return Err(self.stray_tag(&tag));
                        };
                        remaining -= 1;
                        let what = format!("STATUS {}", window[i]);
                        results[i] = Some(match self.check(&what, status, text) {
                            Err(e) => Err(e),
                            Ok(_) => {
                                let pos = got
                                    .iter()
                                    .position(|(n, _)| n == window[i])
                                    .or_else(|| {
                                        got.iter()
                                            .position(|(n, _)| n.eq_ignore_ascii_case(window[i]))
                                    })
                                    .or(if got.is_empty() { None } else { Some(0) });
                                match pos {
                                    Some(p) => Ok(folder_status(&got.remove(p).1)),
                                    None => Err(Error::protocol(
                                        &self.io.server,
                                        format!("{what}: OK without a STATUS response"),
                                    )),
                                }
                            }
                        });
                    }
                    super::session::Step::Untagged(_) => {}
                    super::session::Step::Continue(_) => {
                        self.io.broken = true;
                        return Err(Error::protocol(
                            &self.io.server,
                            "unexpected continuation request during STATUS",
                        ));
                    }
                }
            }
            out.extend(results.into_iter().map(|r| r.expect("every tag completed")));
        }
        Ok(out)
    }

    async fn status_one_sync(&mut self, wire: &str) -> Result<FolderStatus> {
        let parts = [
            Part::Text("STATUS ".into()),
            astring(wire),
            Part::Text(self.status_items().into()),
        ];
        let mut got = None;
        self.run(&parts, &format!("STATUS {wire}"), |u| {
            if let Untagged::Other(name, c) = u
                && name.eq_ignore_ascii_case(b"STATUS")
            {
                got = parse::parse_status_data(&mut c.clone());
                return Ok(true);
            }
            Ok(false)
        })
        .await?;
        got.map(|(_, a)| folder_status(&a)).ok_or_else(|| {
            Error::protocol(
                &self.io.server,
                format!("STATUS {wire}: OK without a STATUS response"),
            )
        })
    }
}

fn folder_status(attrs: &[(String, u64)]) -> FolderStatus {
    let get = |k: &str| attrs.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
    FolderStatus {
        messages: get("MESSAGES").unwrap_or(0) as u32,
        uidnext: get("UIDNEXT").map(|v| Uid(v as u32)),
        uidvalidity: get("UIDVALIDITY").map(|v| UidValidity(v as u32)),
        highestmodseq: get("HIGHESTMODSEQ").map(ModSeq),
    }
}
