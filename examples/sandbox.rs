//! A throwaway mail server with a generated mailbox, for demos and
//! benchmarks: starts the integration tests' unprivileged Dovecot
//! (IMAP/IMAPS/POP3/POP3S, generated CA) in a temp dir, delivers a
//! deterministic corpus, prints ONE JSON line with everything a client
//! needs, and serves until stdin reaches EOF or SIGTERM/SIGINT/SIGHUP
//! arrives; then Dovecot is stopped and the temp dir removed.
//!
//! ```sh
//! cargo run --release --example sandbox -- --messages 10000
//! cargo run --release --example sandbox -- --messages 10000 --inbox-only
//! cargo run --release --example sandbox -- --messages 100000 --max-size 4096
//! cargo run --release --example sandbox -- --users 20 --messages 200   # 20 accounts (migrate)
//! ```
//!
//! With `--users N`, the users are `u000`…, all with alice's password,
//! each with `--messages` of its own (seed + index), and the JSON line
//! has `"users":[…]` and `"imaps_template":"imaps://{user}@localhost:P"`;
//! alice's mailbox stays empty.
//!
//! The JSON line (stdout):
//! `{"imaps":"imaps://alice@localhost:P", "imap":…, "pop3s":…, "pop3":…,
//!   "imaps_port":P, "imap_port":…, "pop3s_port":…, "pop3_port":…,
//!   "ca_file":"…", "user":"alice", "password":"…", "maildir":"…",
//!   "dovecot_config":"…", "folders":{"INBOX":n,…}, "messages":N,
//!   "bytes":B, "wire_bytes":W, "setup_seconds":S}`
//!
//! `bytes` is the size on the server's disk (LF line ends), `wire_bytes`
//! what IMAP/POP3 transfer (CRLF). Progress goes to stderr.

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use common::{CorpusOpts, Dovecot, corpus, folder_set, spread};

#[derive(Parser, Debug)]
#[command(
    about = "Start a throwaway Dovecot with a generated mailbox; print one JSON line; serve until stdin closes or SIGTERM/SIGINT"
)]
struct Args {
    /// Number of messages to deliver
    #[arg(long, default_value_t = 1000)]
    messages: usize,
    /// Number of folders (INBOX, Sent, Archive/2024, Archive/2025, Entwürfe,
    /// 日本語/子, a&b, then Lists/NN); default: those 7
    #[arg(long)]
    folders: Option<usize>,
    /// Corpus seed (same seed, same bytes)
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Cap every message at BYTES (e.g. 4096 for a large, small-message box)
    #[arg(long, value_name = "BYTES")]
    max_size: Option<usize>,
    /// Share of messages with a 250 KB–5 MB attachment [default: the
    /// corpus generator's, 0.035]
    #[arg(long, value_name = "F")]
    big_fraction: Option<f64>,
    /// Everything in INBOX (what POP3 sees)
    #[arg(long, alias = "pop3-only", conflicts_with = "folders")]
    inbox_only: bool,
    /// Hierarchy separator clients see: '.' or '/' (a push target with the
    /// other one shows the folder mapping at work)
    #[arg(long, default_value_t = '.')]
    separator: char,
    /// N accounts u000… (alice's password), each with --messages messages
    #[arg(long, value_name = "N")]
    users: Option<usize>,
}

fn folders(args: &Args) -> Vec<String> {
    if args.inbox_only {
        return vec!["INBOX".to_string()];
    }
    let base: Vec<String> = folder_set().into_iter().map(String::from).collect();
    let k = args.folders.unwrap_or(base.len()).max(1);
    let mut out: Vec<String> = base.into_iter().take(k).collect();
    let mut i = 1;
    while out.len() < k {
        out.push(format!("Lists/list-{i:02}"));
        i += 1;
    }
    out
}

fn main() -> ExitCode {
    let args = Args::parse();
    let t0 = Instant::now();
    let folder_names = folders(&args);

    let extra: Vec<String> = (0..args.users.unwrap_or(0))
        .map(|i| format!("u{i:03}"))
        .collect();
    let dc = Dovecot::start_with(extra.iter().fold(
        common::DovecotOpts::default().separator(args.separator),
        |o, u| o.user(u, common::dovecot::PASSWORD),
    ));
    eprintln!(
        "sandbox: Dovecot up in {} ({:.2} s)",
        dc.dir().display(),
        t0.elapsed().as_secs_f64()
    );

    let mut opts = CorpusOpts {
        max_size: args.max_size,
        ..CorpusOpts::default()
    };
    if let Some(f) = args.big_fraction {
        opts.big_fraction = f;
    }
    let users: Vec<String> = if args.users.is_some() {
        extra
    } else {
        vec![dc.user().to_string()]
    };
    let mut counts = BTreeMap::new();
    let (mut bytes, mut wire_bytes) = (0u64, 0u64);
    for (i, user) in users.iter().enumerate() {
        let t = Instant::now();
        let msgs = corpus(args.seed + i as u64, args.messages, &opts);
        bytes += msgs.iter().map(|m| m.raw.len() as u64).sum::<u64>();
        wire_bytes += msgs.iter().map(|m| m.rfc822_size() as u64).sum::<u64>();
        if i == 0 {
            eprintln!(
                "sandbox: generated {} messages for {user} in {:.2} s",
                msgs.len(),
                t.elapsed().as_secs_f64()
            );
        }
        for (folder, msgs) in spread(msgs, &folder_names) {
            // Creates the Maildir++ folder even when it gets no message.
            dc.deliver(user, &folder, &msgs);
            *counts.entry(folder).or_insert(0) += msgs.len();
        }
    }
    eprintln!(
        "sandbox: delivered {} messages ({:.1} MB) to {} user(s) in {} folders",
        args.messages * users.len(),
        bytes as f64 / 1e6,
        users.len(),
        counts.len()
    );

    // Let Dovecot index every folder now, and compute every message's
    // virtual size (what POP3 LIST and IMAP RFC822.SIZE report), so that
    // the first client's time is not Dovecot's indexing: without `vsize`
    // the first POP3 login reads every message file (about 1 s of Dovecot's
    // time for a 10,000-message corpus), and whichever tool went first paid
    // for it. The STATUS answers double as a check.
    let t = Instant::now();
    let mut indexed = 0u64;
    let mut out = String::new();
    for user in &users {
        out = dc.doveadm(&[
            "-f",
            "tab",
            "mailbox",
            "status",
            "-u",
            user,
            "messages vsize",
            "*",
        ]);
        // Columns: mailbox, messages, vsize.
        indexed += out
            .lines()
            .skip(1)
            .filter_map(|l| l.split('\t').nth(1)?.trim().parse::<u64>().ok())
            .sum::<u64>();
    }
    eprintln!(
        "sandbox: Dovecot indexed {indexed} messages in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    if indexed != (args.messages * users.len()) as u64 {
        eprintln!(
            "sandbox: Dovecot sees {indexed} messages, {} were delivered; doveadm said (last user):\n{out}",
            args.messages * users.len()
        );
        return ExitCode::FAILURE;
    }

    let line = serde_json::json!({
        "imaps": dc.url("imaps"),
        "imap": dc.url("imap"),
        "pop3s": dc.url("pop3s"),
        "pop3": dc.url("pop3"),
        "imaps_port": dc.imaps_port(),
        "imap_port": dc.imap_port(),
        "pop3s_port": dc.pop3s_port(),
        "pop3_port": dc.pop3_port(),
        "ca_file": dc.ca_file(),
        "user": dc.user(),
        "password": dc.password(),
        "maildir": dc.maildir(dc.user()),
        "dovecot_config": dc.config_path(),
        "folders": counts,
        "users": users,
        "imaps_template": format!("imaps://{{user}}@localhost:{}", dc.imaps_port()),
        "messages": args.messages,
        "bytes": bytes,
        "wire_bytes": wire_bytes,
        "setup_seconds": (t0.elapsed().as_secs_f64() * 100.0).round() / 100.0,
    });
    {
        let mut stdout = std::io::stdout().lock();
        if writeln!(stdout, "{line}")
            .and_then(|_| stdout.flush())
            .is_err()
        {
            // Nobody listens: nothing to serve.
            return ExitCode::FAILURE;
        }
    }
    eprintln!("sandbox: serving; close stdin or send SIGTERM/SIGINT to stop");

    let why = wait_for_stop();
    eprintln!("sandbox: {why}, stopping Dovecot");
    dc.stop();
    ExitCode::SUCCESS
}

/// Blocks until stdin reaches EOF or a SIGTERM/SIGINT/SIGHUP arrives.
fn wait_for_stop() -> &'static str {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 4096];
        // Input is ignored; only its end matters.
        while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
        let _ = tx.send(());
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        let mut hup = signal(SignalKind::hangup()).expect("SIGHUP handler");
        tokio::select! {
            _ = rx.recv() => "stdin closed",
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
            _ = hup.recv() => "SIGHUP",
        }
    })
}
