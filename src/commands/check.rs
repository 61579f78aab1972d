//! `mailferry check URL...`: connect, show TLS, authenticate, list what the
//! server offers. The first thing to run against a new account, and the
//! place where a certificate problem gets its fix spelled out.

use serde_json::{Value, json};

use crate::config::{Account, Config, SecretSource};
use crate::endpoint::{Endpoint, Protocol, ServerConfig};
use crate::error::{Error, Result};
use crate::net::PeerCert;
use crate::report::Reporter;

/// Checks every account; the first failure's error decides the exit code,
/// but every account is checked and reported.
pub async fn run(
    config: &Config,
    urls: &[String],
    secret: SecretSource,
    rep: &Reporter,
) -> Result<()> {
    let mut first_err = None;
    for spec in urls {
        let acct = config.account(spec, secret.clone())?;
        let r = check_one(config, &acct, rep).await;
        if let Err(e) = r {
            let (label, hint) = (acct.describe(), cert_hint(config, &acct, &e).await);
            if rep.json() {
                let mut v = json!({"event": "check", "account": label, "ok": false,
                    "error": e.to_string(), "exit_code": e.exit_code() as i32});
                if let Some(c) = &hint {
                    v["certificate"] = cert_json(c);
                }
                rep.emit_value(&v);
            } else {
                println!("{label}\n  FAILED    {e}");
                if let Some(c) = &hint {
                    println!("  cert      {} (issuer {})", c.subject, c.issuer);
                    println!("  pin with  --tls-fingerprint {}", c.fingerprint());
                }
            }
            first_err.get_or_insert(e);
        }
    }
    match first_err {
        Some(e) => Err(Error::Reported(Box::new(e))),
        None => Ok(()),
    }
}

/// Which provider profile applies and what it sets: a `profile` line and
/// the `provider` object of `--json` (null for any other server).
fn provider_report(acct: &Account, host: &str, run: u16, out: &mut Value, lines: &mut Vec<String>) {
    let Some(pu) = acct.profile else {
        out["provider"] = Value::Null;
        return;
    };
    let p = pu.profile;
    let size = |v: Option<u64>| v.map_or("none".to_string(), crate::report::human_bytes);
    let quirks = p.quirks.names();
    lines.push(format!("  profile   {}", pu.describe(host)));
    lines.push(format!(
        "  limits    {} connections, daily download {}, daily upload {}, APPEND up to {}",
        acct.max_connections(run),
        size(acct.daily_download),
        size(acct.daily_upload),
        size(p.quirks.append_limit)
    ));
    if !quirks.is_empty() {
        lines.push(format!("  quirks    {}", quirks.join(" ")));
    }
    if let Some(o) = p.oauth {
        lines.push(format!("  oauth     {o} (mailferry login NAME)"));
    }
    out["provider"] = json!({
        "name": p.name,
        "applied": match pu.applied {
            crate::provider::Applied::Named => "config",
            crate::provider::Applied::ByHost => "host",
        },
        "connections": acct.max_connections(run),
        "daily_download": acct.daily_download,
        "daily_upload": acct.daily_upload,
        "append_limit": p.quirks.append_limit,
        "quirks": quirks,
        "oauth": p.oauth,
    });
}

async fn check_one(config: &Config, acct: &Account, rep: &Reporter) -> Result<()> {
    let url = match &acct.endpoint {
        Endpoint::Server(u) => u.clone(),
        Endpoint::Maildir(p) => return check_maildir(p, rep),
    };
    let timeouts = config.settings.timeouts;
    let mut cfg = acct.server_config("URL", timeouts)?;
    let version = tls_version(&mut cfg, url.protocol).await;
    let mut out = json!({"event": "check", "account": acct.describe(), "ok": true,
        "protocol": match url.protocol { Protocol::Imap => "imap", Protocol::Pop3 => "pop3" }});
    let mut lines = vec![acct.describe()];
    provider_report(
        acct,
        &url.host,
        config.settings.connections,
        &mut out,
        &mut lines,
    );
    match url.protocol {
        Protocol::Imap => {
            let (mut s, info) =
                crate::exec::fresh_login(async || crate::imap::connect(&cfg).await).await?;
            tls_report(&mut out, &mut lines, info.cert.as_ref(), version.as_deref());
            lines.push(format!("  auth      ok as {}", url.user));
            let caps: Vec<String> = info.capabilities.atoms().to_vec();
            lines.push(format!("  caps      {}", caps.join(" ")));
            out["capabilities"] = json!(caps);
            let folders = s.list_folders().await?;
            let wires: Vec<&str> = folders
                .iter()
                .filter(|f| f.selectable)
                .map(|f| f.wire.as_str())
                .collect();
            let statuses = s.status_many(&wires).await?;
            let mut counts = std::collections::HashMap::new();
            for (w, st) in wires.iter().zip(statuses) {
                counts.insert(w.to_string(), st);
            }
            let width = folders
                .iter()
                .map(|f| f.name.as_str().chars().count())
                .max()
                .unwrap_or(0);
            lines.push(format!("  folders   {}", folders.len()));
            let mut jf = Vec::new();
            for f in &folders {
                let messages = match counts.get(&f.wire) {
                    Some(Ok(st)) => Some(st.messages),
                    _ => None,
                };
                let special = f.special_use.map(|s| format!("\\{s:?}"));
                let count = match (f.selectable, messages) {
                    (false, _) => "(not selectable)".to_string(),
                    (true, Some(n)) => format!("{n} messages"),
                    (true, None) => "(STATUS failed)".to_string(),
                };
                lines.push(format!(
                    "    {:<width$}  {:<9} {count}",
                    f.name.as_str(),
                    special.clone().unwrap_or_default()
                ));
                if let Some(w) = &f.warning {
                    lines.push(format!("      warning: {w}"));
                }
                jf.push(
                    json!({"name": f.name.as_str(), "messages": messages, "special_use": special,
                    "selectable": f.selectable, "warning": f.warning}),
                );
            }
            out["folders"] = Value::Array(jf);
            s.logout(timeouts.command).await;
        }
        Protocol::Pop3 => {
            let (mut c, info) =
                crate::exec::fresh_login(async || crate::pop3::connect(&cfg).await).await?;
            tls_report(&mut out, &mut lines, info.cert.as_ref(), version.as_deref());
            lines.push(format!(
                "  auth      ok as {} ({})",
                url.user, info.auth_mechanism
            ));
            let caps = c.login_capabilities().await?.to_vec();
            let pipelining = c.window() > 1;
            lines.push(format!("  caps      {}", caps.join(" ")));
            let (count, size) = c.stat().await?;
            let uidl = c.uidl_all().await?.is_some();
            lines.push(format!(
                "  messages  {count} ({})",
                crate::report::human_bytes(size)
            ));
            lines.push(format!(
                "  UIDL      {}",
                if uidl {
                    "yes"
                } else {
                    "no (fetch falls back to a header digest)"
                }
            ));
            lines.push(format!(
                "  pipelining {}",
                if pipelining { "yes" } else { "no" }
            ));
            out["capabilities"] = json!(caps);
            out["messages"] = json!(count);
            out["bytes"] = json!(size);
            out["uidl"] = json!(uidl);
            out["pipelining"] = json!(pipelining);
            c.quit().await?;
        }
    }
    if rep.json() {
        rep.emit_value(&out);
    } else {
        println!("{}", lines.join("\n"));
    }
    Ok(())
}

/// Finds the negotiated TLS version: the library does not report it, so
/// try once requiring TLS 1.3 and fall back to the default (1.2 minimum).
async fn tls_version(cfg: &mut ServerConfig, proto: Protocol) -> Option<String> {
    if cfg.url.security == crate::endpoint::Security::Plaintext {
        return None;
    }
    let mut probe = cfg.clone();
    probe.tls.min_tls13 = true;
    let ok = match proto {
        Protocol::Imap => crate::imap::connect(&probe).await.map(|(s, _)| drop(s)),
        Protocol::Pop3 => crate::pop3::connect(&probe).await.map(|(c, _)| drop(c)),
    };
    match ok {
        Ok(()) => Some("TLS 1.3".into()),
        Err(Error::Connect { msg, .. }) if msg.contains("handshake failed") => {
            Some("TLS 1.2".into())
        }
        Err(_) => None,
    }
}

fn tls_report(
    out: &mut Value,
    lines: &mut Vec<String>,
    cert: Option<&PeerCert>,
    version: Option<&str>,
) {
    match cert {
        Some(c) => {
            lines.push(format!("  tls       {} verified", version.unwrap_or("TLS")));
            lines.push(format!(
                "  cert      {} (issuer {}), expires {}",
                c.subject, c.issuer, c.not_after
            ));
            lines.push(format!("  pin with  --tls-fingerprint {}", c.fingerprint()));
            let mut j = cert_json(c);
            j["version"] = json!(version);
            out["tls"] = j;
        }
        None => {
            lines.push("  tls       none (plain text: --insecure-plaintext)".into());
            out["tls"] = Value::Null;
        }
    }
}

fn cert_json(c: &PeerCert) -> Value {
    json!({"subject": c.subject, "issuer": c.issuer, "not_after": c.not_after, "fingerprint": c.fingerprint()})
}

/// For an untrusted certificate, fetch it anyway (without trusting it) so
/// the user sees what to pin or which CA to add.
async fn cert_hint(config: &Config, acct: &Account, e: &Error) -> Option<PeerCert> {
    let Error::Connect { msg, .. } = e else {
        return None;
    };
    if !msg.contains("not trusted") {
        return None;
    }
    let url = acct.server_url("URL").ok()?;
    if url.security != crate::endpoint::Security::Implicit {
        return None; // would need the STARTTLS dance again; the error says what to do
    }
    let t = config.settings.timeouts.connect;
    let tcp = crate::net::tcp_connect(&url.host, url.port, t).await.ok()?;
    crate::net::peek_certificate(tcp, &url.host, t).await
}

fn check_maildir(p: &std::path::Path, rep: &Reporter) -> Result<()> {
    if !p.join("cur").is_dir() {
        return Err(Error::Usage(format!(
            "{}: not a Maildir (no cur/ directory)",
            p.display()
        )));
    }
    let md = crate::maildir::Maildir::open_or_create(p)?;
    let folders = md.list_folders()?;
    let mut jf = Vec::new();
    let mut lines = vec![
        p.display().to_string(),
        format!("  folders   {}", folders.len()),
    ];
    for f in &folders {
        let n = md.scan(f)?.len();
        lines.push(format!("    {f}  {n} messages"));
        jf.push(json!({"name": f.as_str(), "messages": n}));
    }
    if rep.json() {
        rep.emit_value(&json!({"event": "check", "account": p.display().to_string(), "ok": true, "protocol": "maildir", "folders": jf}));
    } else {
        println!("{}", lines.join("\n"));
    }
    Ok(())
}
