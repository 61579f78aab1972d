//! The account manifest of `migrate`: a CSV file with a header, one row per
//! account pair. Secrets are never in it: a row names where its passwords
//! come from (`env:VAR`, `file:PATH`, `command:CMD`, `oauth2-command:CMD`),
//! so the manifest can be reviewed, versioned and shared with the people
//! running the migration without handing out hundreds of passwords.
//!
//! Columns (header names, any order; `id`, `source` and `target` required):
//!
//! | column | meaning |
//! |---|---|
//! | `id` | unique account id: names the state file, the log and the report row |
//! | `source` | IMAP/POP3 URL, Maildir path, or config account name |
//! | `target` | IMAP URL or config account name |
//! | `source_secret` | source password reference (empty: the config account's, else `$MAILFERRY_FROM_PASSWORD`) |
//! | `target_secret` | target password reference (empty: the config account's, else `$MAILFERRY_TO_PASSWORD`) |
//!
//! The parser is RFC 4180 (quoted fields, `""` inside quotes, CRLF or LF);
//! blank lines and lines starting with `#` are skipped. A hand-written one,
//! because the whole format is these few rules and every error must name
//! the line and the row's id.

use std::path::{Path, PathBuf};

use crate::config::{SecretSource, expand_tilde};
use crate::error::{Error, Result};

/// One account pair of the manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// 1-based line of the file where the row starts (for messages).
    pub line: usize,
    pub id: String,
    pub source: String,
    pub target: String,
    pub source_secret: Option<SecretRef>,
    pub target_secret: Option<SecretRef>,
}

/// Where a password comes from: a reference, never the password.
#[derive(Debug, Clone, PartialEq)]
pub enum SecretRef {
    Env(String),
    File(PathBuf),
    Command(String),
    OAuth2Command(String),
}

impl SecretRef {
    /// Parses `env:VAR`, `file:PATH`, `command:CMD`, `oauth2-command:CMD`.
    /// Anything else is taken for an inline password and refused; the
    /// message never repeats the value.
    pub fn parse(s: &str) -> std::result::Result<SecretRef, String> {
        let (kind, rest) = s.split_once(':').unwrap_or(("", ""));
        let rest = rest.trim();
        let r = match kind.trim() {
            "env" if is_env_name(rest) => SecretRef::Env(rest.into()),
            "env" => return Err("env: needs a variable name (letters, digits, _)".into()),
            "file" if !rest.is_empty() => SecretRef::File(expand_tilde(rest)),
            "command" if !rest.is_empty() => SecretRef::Command(rest.into()),
            "oauth2-command" if !rest.is_empty() => SecretRef::OAuth2Command(rest.into()),
            _ => {
                return Err(
                    "is not a secret reference (env:VAR, file:PATH, command:CMD or \
                     oauth2-command:CMD); inline passwords are refused: put the password \
                     in a file, a variable or a password manager and name it here"
                        .into(),
                );
            }
        };
        Ok(r)
    }

    /// The config layer's form of this reference.
    pub fn source(&self) -> SecretSource {
        match self {
            SecretRef::Env(v) => SecretSource::Env(v.clone()),
            SecretRef::File(p) => SecretSource::File(p.clone()),
            SecretRef::Command(c) => SecretSource::Command(c.clone()),
            SecretRef::OAuth2Command(c) => SecretSource::OAuth2Command(c.clone()),
        }
    }
}

fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The columns a manifest may have.
const COLUMNS: &[&str] = &["id", "source", "target", "source_secret", "target_secret"];

/// Reads and checks a manifest file.
pub fn load(path: &Path) -> Result<Vec<Row>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
        file: path.display().to_string(),
        line: None,
        msg: format!("cannot read the manifest: {e}"),
    })?;
    parse(&text).map_err(|(line, msg)| Error::Config {
        file: path.display().to_string(),
        line,
        msg,
    })
}

/// A parse error: the line (where known) and what is wrong.
pub type ParseError = (Option<usize>, String);

/// Parses manifest text.
pub fn parse(text: &str) -> std::result::Result<Vec<Row>, ParseError> {
    let records = split_records(text)?;
    let mut it = records.into_iter();
    let Some((hline, header)) = it.next() else {
        return Err((
            None,
            "the manifest is empty (it needs a header line: id,source,target,...)".into(),
        ));
    };
    let mut idx: [Option<usize>; 5] = [None; 5];
    for (i, h) in header.iter().enumerate() {
        let h = h.trim().to_ascii_lowercase();
        if h.contains("password") || h == "pass" || h == "secret" {
            return Err((
                Some(hline),
                format!(
                    "column {h:?}: passwords are never written in the manifest; use \
                     source_secret/target_secret with env:VAR, file:PATH or command:CMD"
                ),
            ));
        }
        let Some(c) = COLUMNS.iter().position(|c| *c == h) else {
            return Err((
                Some(hline),
                format!("unknown column {h:?} (known: {})", COLUMNS.join(", ")),
            ));
        };
        if idx[c].replace(i).is_some() {
            return Err((Some(hline), format!("column {h:?} appears twice")));
        }
    }
    for (c, name) in COLUMNS.iter().enumerate().take(3) {
        if idx[c].is_none() {
            return Err((Some(hline), format!("the header has no {name:?} column")));
        }
    }
    let mut rows = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for (line, rec) in it {
        if rec.len() > header.len() {
            return Err((
                Some(line),
                format!("{} fields, the header has {}", rec.len(), header.len()),
            ));
        }
        let get = |c: usize| -> String {
            idx[c]
                .and_then(|i| rec.get(i))
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let id = get(0);
        if id.is_empty() {
            return Err((Some(line), "the row has no id".into()));
        }
        if id.chars().any(char::is_control) {
            return Err((Some(line), "the id holds a control character".into()));
        }
        if let Some(first) = seen.insert(id.clone(), line) {
            return Err((
                Some(line),
                format!("id {id:?} is used twice (first on line {first})"),
            ));
        }
        let (source, target) = (get(1), get(2));
        for (name, v) in [("source", &source), ("target", &target)] {
            if v.is_empty() {
                return Err((Some(line), format!("row {id:?}: {name} is empty")));
            }
            if url_has_password(v) {
                return Err((
                    Some(line),
                    format!(
                        "row {id:?}: the {name} URL holds a password; inline passwords are \
                         refused: use {name}_secret with env:VAR, file:PATH or command:CMD"
                    ),
                ));
            }
        }
        let secret = |c: usize, name: &str| -> std::result::Result<Option<SecretRef>, ParseError> {
            let v = get(c);
            if v.is_empty() {
                return Ok(None);
            }
            SecretRef::parse(&v)
                .map(Some)
                .map_err(|m| (Some(line), format!("row {id:?}: {name} {m}")))
        };
        rows.push(Row {
            line,
            source_secret: secret(3, "source_secret")?,
            target_secret: secret(4, "target_secret")?,
            id,
            source,
            target,
        });
    }
    Ok(rows)
}

/// `scheme://user:pass@host`: a password in the authority part.
fn url_has_password(v: &str) -> bool {
    let Some((_, rest)) = v.split_once("://") else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or("");
    authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

/// Splits CSV text into records (line of their start, fields), skipping
/// blank lines and `#` comment lines outside quotes.
fn split_records(text: &str) -> std::result::Result<Vec<(usize, Vec<String>)>, ParseError> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    loop {
        // Skip blank and comment lines.
        match chars.peek() {
            None => break,
            Some('\n') => {
                chars.next();
                line += 1;
                continue;
            }
            Some('\r') => {
                chars.next();
                continue;
            }
            Some('#') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                line += 1;
                continue;
            }
            _ => {}
        }
        let start = line;
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        let mut was_quoted = false;
        loop {
            let Some(c) = chars.next() else {
                if quoted {
                    return Err((Some(start), "a quoted field is not closed".into()));
                }
                fields.push(std::mem::take(&mut field));
                break;
            };
            if quoted {
                match c {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    '"' => quoted = false,
                    '\n' => {
                        line += 1;
                        field.push('\n');
                    }
                    c => field.push(c),
                }
                continue;
            }
            match c {
                '"' if field.trim().is_empty() && !was_quoted => {
                    field.clear();
                    quoted = true;
                    was_quoted = true;
                }
                '"' => {
                    return Err((
                        Some(line),
                        "a quote inside an unquoted field (quote the whole field and double the \")"
                            .into(),
                    ));
                }
                ',' => {
                    fields.push(std::mem::take(&mut field));
                    was_quoted = false;
                }
                '\r' if chars.peek() == Some(&'\n') => {}
                '\n' => {
                    line += 1;
                    fields.push(std::mem::take(&mut field));
                    break;
                }
                c if was_quoted && !c.is_whitespace() => {
                    return Err((Some(line), "text after a closing quote".into()));
                }
                c => field.push(c),
            }
        }
        out.push((start, fields));
    }
    Ok(out)
}

/// A file name for an account's state and log, derived from its id so
/// that any id — `../x`, `a/b`, `CON`, 300 characters — stays inside the
/// state directory: characters other than ASCII letters, digits and
/// `@ . _ + -` become `_`, a leading dot too, the readable part is cut at
/// 64 characters, and a hash of the whole id keeps two ids that read alike
/// (`a/b`, `a_b`) apart.
pub fn file_stem(id: &str) -> String {
    let mut s: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "@._+-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if s.starts_with('.') || s.is_empty() {
        s.insert(0, '_');
    }
    format!("{s}-{:08x}", super::shard::fnv1a(id.as_bytes()) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quotes_comments_and_optional_columns() {
        let rows = parse(
            "# accounts to move\r\nid,source,target,target_secret\r\n\
             alice,imaps://alice@old,imaps://alice@new,env:ALICE_PW\r\n\
             \r\n\"bob, jr\",\"imaps://bob@old\",imaps://bob@new,\"command:pass show \"\"bob\"\"\"\n",
        )
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].line, 3);
        assert_eq!(
            rows[0].target_secret,
            Some(SecretRef::Env("ALICE_PW".into()))
        );
        assert_eq!(rows[0].source_secret, None);
        assert_eq!(rows[1].id, "bob, jr");
        assert_eq!(rows[1].line, 5);
        assert_eq!(
            rows[1].target_secret,
            Some(SecretRef::Command("pass show \"bob\"".into()))
        );
    }

    #[test]
    fn inline_passwords_are_refused_naming_the_row_not_the_secret() {
        let (line, msg) = parse(
            "id,source,target,source_secret\nok,imaps://a@h,imaps://a@g,env:X\n\
             carol,imaps://carol@old,imaps://carol@new,hunter2\n",
        )
        .unwrap_err();
        assert_eq!(line, Some(3));
        assert!(
            msg.contains("\"carol\"") && msg.contains("inline passwords"),
            "{msg}"
        );
        assert!(!msg.contains("hunter2"), "{msg}");

        let (line, msg) =
            parse("id,source,target\ndan,imaps://dan:hunter2@old,imaps://dan@new\n").unwrap_err();
        assert_eq!(line, Some(2));
        assert!(msg.contains("\"dan\"") && !msg.contains("hunter2"), "{msg}");

        let (line, msg) = parse("id,source,target,password\n").unwrap_err();
        assert_eq!(line, Some(1));
        assert!(msg.contains("never written"), "{msg}");
    }

    #[test]
    fn bad_manifests_say_where() {
        assert!(parse("").is_err());
        assert!(parse("id,source\n").unwrap_err().1.contains("target"));
        assert!(
            parse("id,source,target,colour\n")
                .unwrap_err()
                .1
                .contains("colour")
        );
        let (l, m) = parse("id,source,target\na,s,t\na,s2,t2\n").unwrap_err();
        assert_eq!(l, Some(3));
        assert!(m.contains("line 2"), "{m}");
        assert_eq!(parse("id,source,target\na,s,t,x\n").unwrap_err().0, Some(2));
        assert!(parse("id,source,target\n\"a,s,t\n").is_err());
        assert!(
            parse("id,source,target\n,s,t\n")
                .unwrap_err()
                .1
                .contains("no id")
        );
    }

    #[test]
    fn hostile_ids_stay_inside_the_state_dir() {
        for id in [
            "../x",
            "..",
            ".",
            "/etc/passwd",
            "a/../../b",
            "",
            "x\\..\\y",
            "ä😀",
        ] {
            let s = file_stem(id);
            assert!(
                !s.contains('/') && !s.contains('\\') && !s.starts_with('.'),
                "{id}: {s}"
            );
            let p = Path::new("/state").join(format!("{s}.db"));
            assert_eq!(p.parent(), Some(Path::new("/state")), "{id}");
        }
        assert_ne!(file_stem("a/b"), file_stem("a_b"));
        assert_eq!(
            file_stem("alice@example.com"),
            file_stem("alice@example.com")
        );
        assert!(file_stem(&"x".repeat(500)).len() < 80);
    }
}
