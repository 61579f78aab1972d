//! Deterministic, realistic mail corpus: the same seed gives the same bytes
//! on every machine (own xorshift PRNG, no `rand`), so a failing test can be
//! replayed exactly.
//!
//! It carries what breaks mail movers in practice: RFC 2047 and raw UTF-8
//! subjects, 8bit bodies, lines starting with "." and "..", a lone "." line,
//! big base64 attachments, ~1% malformed messages, missing and duplicate
//! Message-IDs, dates over several years and time zones.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One message as stored on disk by Dovecot (LF line ends).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Raw bytes with LF line ends; use [`Message::raw_crlf`] for the wire.
    pub raw: Vec<u8>,
    /// INTERNALDATE; the Date: header names the same instant (if present).
    pub internal_date: SystemTime,
    /// Maildir flag letters, e.g. "FS".
    pub flags: String,
    /// The Message-ID header value with angle brackets, if the message has
    /// one.
    pub message_id: Option<String>,
}

impl Message {
    /// The bytes as IMAP/POP3 transfer them (CRLF line ends).
    pub fn raw_crlf(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.raw.len() + self.raw.len() / 40);
        for &b in &self.raw {
            if b == b'\n' {
                out.push(b'\r');
            }
            out.push(b);
        }
        out
    }
    /// RFC822.SIZE as an IMAP server reports it (CRLF size).
    pub fn rfc822_size(&self) -> usize {
        self.raw.len() + self.raw.iter().filter(|&&b| b == b'\n').count()
    }
    /// The Subject header line's raw value (first line), if any.
    pub fn subject(&self) -> Option<String> {
        header(&self.raw, "Subject")
    }
}

/// Raw (undecoded, unfolded first line) value of a header.
pub fn header(raw: &[u8], name: &str) -> Option<String> {
    let end = find(raw, b"\n\n").unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..end]);
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Corpus knobs. `Default` is the realistic mix; [`CorpusOpts::small`]
/// caps sizes for fast tests.
#[derive(Clone, Debug)]
pub struct CorpusOpts {
    /// No message is larger than this (raw LF bytes).
    pub max_size: Option<usize>,
    /// Share of messages with a 250 KB–5 MB base64 attachment.
    pub big_fraction: f64,
    /// Share of malformed messages.
    pub malformed_fraction: f64,
    /// Share of messages reusing an earlier Message-ID (half of them exact
    /// copies).
    pub duplicate_fraction: f64,
    /// Dates are spread uniformly over [start, end) (Unix seconds).
    pub start: u64,
    pub end: u64,
}

impl Default for CorpusOpts {
    fn default() -> Self {
        CorpusOpts {
            max_size: None,
            big_fraction: 0.035,
            malformed_fraction: 0.01,
            duplicate_fraction: 0.005,
            start: 1_546_300_800, // 2019-01-01
            end: 1_767_225_600,   // 2026-01-01
        }
    }
}

impl CorpusOpts {
    /// Realistic mix, but no message over 64 KB.
    pub fn small() -> Self {
        CorpusOpts {
            max_size: Some(64 * 1024),
            ..Default::default()
        }
    }
    pub fn max_size(mut self, bytes: usize) -> Self {
        self.max_size = Some(bytes);
        self
    }
}

/// xorshift64* PRNG.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // splitmix64 step so that small seeds give unrelated streams.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0);
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo)
    }
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

const B64_STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Base64 with the given alphabet, optionally padded.
pub fn base64(data: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = Vec::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        let chars = chunk.len() + 1;
        for i in 0..4 {
            if i < chars {
                out.push(alphabet[(n >> (18 - 6 * i) & 63) as usize]);
            } else if pad {
                out.push(b'=');
            }
        }
    }
    String::from_utf8(out).expect("base64 alphabet is ASCII")
}

/// Realistic folder list for multi-folder tests ('/' separator).
pub fn folder_set() -> Vec<&'static str> {
    vec![
        "INBOX",
        "Sent",
        "Archive/2024",
        "Archive/2025",
        "Entwürfe",
        "日本語/子",
        "a&b",
    ]
}

/// Distributes a corpus over folders, deterministically: each folder gets
/// at least one message (if there are enough), the first folder (INBOX)
/// about four times as many as each other one. Keeps the corpus order
/// within each folder.
pub fn spread<S: AsRef<str>>(corpus: Vec<Message>, folders: &[S]) -> Vec<(String, Vec<Message>)> {
    assert!(!folders.is_empty());
    let mut out: Vec<(String, Vec<Message>)> = folders
        .iter()
        .map(|f| (f.as_ref().to_string(), Vec::new()))
        .collect();
    let weights: Vec<u64> = (0..folders.len())
        .map(|i| if i == 0 { 4 } else { 1 })
        .collect();
    let total: u64 = weights.iter().sum();
    let mut rng = Rng::new(0x5EED_F01D);
    for (i, m) in corpus.into_iter().enumerate() {
        let idx = if i < folders.len() {
            i
        } else {
            let mut r = rng.below(total);
            let mut k = 0;
            while r >= weights[k] {
                r -= weights[k];
                k += 1;
            }
            k
        };
        out[idx].1.push(m);
    }
    out
}

const DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "mail.example.net",
    "lists.example.de",
    "example.co.jp",
];
const NAMES: &[&str] = &[
    "Alice Example",
    "Bob Builder",
    "Jürgen Müller",
    "Zoë Ångström",
    "山田 太郎",
    "Иван Петров",
    "Carol",
    "noreply",
];
const WORDS: &[&str] = &[
    "the",
    "mail",
    "server",
    "backup",
    "invoice",
    "meeting",
    "tomorrow",
    "please",
    "find",
    "attached",
    "regards",
    "project",
    "update",
    "Grüße",
    "Straße",
    "für",
    "Überweisung",
    "Größe",
    "naïve",
    "café",
    "déjà",
    "vu",
    "日本語",
    "メール",
    "テスト",
    "привет",
    "письмо",
    "ελληνικά",
    "€",
    "100",
    "2024",
    "—",
    "ok",
    "and",
    "or",
    "not",
    "a",
    "to",
    "of",
    "in",
    "with",
    "data",
];
const SUBJECTS: &[&str] = &[
    "Meeting tomorrow",
    "Re: Invoice 2024-117",
    "Fwd: Your order has shipped",
    "Grüße aus München",
    "Überweisung für März",
    "日本語のテスト",
    "Привет из Москвы",
    "Café ☕ on Friday?",
    "[list] weekly digest",
    "Zoë's naïve résumé",
    "",
];
const ZONES: &[i32] = &[0, 60, 120, -300, -420, 540, 330, -180, 600];
const DAYS: &[&str] = &["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: &[&str] = &[
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// RFC 5322 date of Unix time `secs`, expressed in the zone `offset_min`.
pub fn rfc2822_date(secs: u64, offset_min: i32) -> String {
    let local = secs as i64 + offset_min as i64 * 60;
    let days = local.div_euclid(86_400);
    let rem = local.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let sign = if offset_min < 0 { '-' } else { '+' };
    let off = offset_min.abs();
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} {}{:02}{:02}",
        DAYS[days.rem_euclid(7) as usize],
        d,
        MONTHS[m as usize - 1],
        y,
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        sign,
        off / 60,
        off % 60
    )
}

fn encode_subject(rng: &mut Rng, s: &str) -> String {
    if s.is_ascii() {
        return s.to_string();
    }
    match rng.below(3) {
        0 => format!("=?UTF-8?B?{}?=", base64(s.as_bytes(), B64_STD, true)),
        1 => {
            let mut q = String::from("=?UTF-8?Q?");
            for &b in s.as_bytes() {
                match b {
                    b' ' => q.push('_'),
                    b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => q.push(b as char),
                    _ => q.push_str(&format!("={b:02X}")),
                }
            }
            q.push_str("?=");
            q
        }
        // Raw UTF-8 in the header (RFC 6532 / sloppy mailers).
        _ => s.to_string(),
    }
}

/// Appends text lines (≤ 76 chars, UTF-8) to `out` until it holds `target`
/// bytes, with the dot-leading lines that trip up POP3 code.
fn fill_text(rng: &mut Rng, out: &mut Vec<u8>, target: usize, dots: bool) {
    let start = out.len();
    let mut line = String::new();
    while out.len() < target {
        if dots && rng.chance(0.03) {
            let special = *rng.pick(&[
                ".",
                "..",
                "...",
                ".hidden line",
                "..two dots",
                "From the start",
            ]);
            out.extend_from_slice(special.as_bytes());
            out.push(b'\n');
            continue;
        }
        if rng.chance(0.08) && out.len() > start {
            out.push(b'\n'); // paragraph break
        }
        line.clear();
        let mut chars = 0;
        while chars < 50 {
            if !line.is_empty() {
                line.push(' ');
                chars += 1;
            }
            let w = *rng.pick(WORDS);
            line.push_str(w);
            chars += w.chars().count();
        }
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    // Trim back to the target on a character boundary (keeps UTF-8 valid).
    if out.len() > target && target > start {
        let mut cut = target;
        while cut > start && (out[cut - 1] & 0xC0) == 0x80 {
            cut -= 1;
        }
        while cut > start && out[cut - 1] >= 0x80 {
            cut -= 1;
        }
        out.truncate(cut);
        if out.last() != Some(&b'\n') {
            out.push(b'\n');
        }
    }
}

fn base64_lines(rng: &mut Rng, out: &mut Vec<u8>, encoded_len: usize) {
    let data = rng.bytes(encoded_len / 4 * 3);
    let enc = base64(&data, B64_STD, true);
    for chunk in enc.as_bytes().chunks(76) {
        out.extend_from_slice(chunk);
        out.push(b'\n');
    }
}

/// Generates `n` messages from `seed`.
pub fn corpus(seed: u64, n: usize, opts: &CorpusOpts) -> Vec<Message> {
    let mut rng = Rng::new(seed);
    let mut msgs: Vec<Message> = Vec::with_capacity(n);
    let cap = opts.max_size.unwrap_or(usize::MAX);
    for i in 0..n {
        let secs = rng.range(opts.start, opts.end);
        let flags = match rng.below(100) {
            0..=59 => "S",
            60..=74 => "",
            75..=84 => "RS",
            85..=91 => "FS",
            92..=94 => "F",
            95..=96 => "DS",
            97 => "FRS",
            98 => "ST",
            _ => "DFS",
        }
        .to_string();

        // Duplicates: reuse an earlier Message-ID, half of them as exact copies.
        if i > 0 && rng.chance(opts.duplicate_fraction) {
            let j = rng.below(i as u64) as usize;
            if msgs[j].message_id.is_some() {
                if rng.chance(0.5) {
                    let mut m = msgs[j].clone();
                    m.flags = flags;
                    msgs.push(m);
                    continue;
                }
                let id = msgs[j].message_id.clone();
                let m = build(&mut rng, seed, i, secs, cap, opts, id, flags, None);
                msgs.push(m);
                continue;
            }
        }
        let malformed = rng.chance(opts.malformed_fraction).then(|| rng.below(5));
        let id = (!rng.chance(0.003)).then(|| {
            format!(
                "<{:x}.{}.{:x}@{}>",
                seed,
                i,
                rng.next_u64() >> 24,
                rng.pick(DOMAINS)
            )
        });
        let m = build(&mut rng, seed, i, secs, cap, opts, id, flags, malformed);
        msgs.push(m);
    }
    msgs
}

#[allow(clippy::too_many_arguments)]
fn build(
    rng: &mut Rng,
    seed: u64,
    i: usize,
    secs: u64,
    cap: usize,
    opts: &CorpusOpts,
    message_id: Option<String>,
    flags: String,
    malformed: Option<u64>,
) -> Message {
    // Target size: mostly 2–20 KB, some short, some 20–120 KB, a few huge.
    let big = rng.chance(opts.big_fraction);
    let target = if big {
        rng.range(250_000, 5_000_000) as usize
    } else {
        (match rng.below(10) {
            0 => rng.range(600, 2_000),
            1 => rng.range(20_000, 120_000),
            _ => rng.range(2_000, 20_000),
        }) as usize
    }
    .min(cap);

    let zone = *rng.pick(ZONES);
    let from_name = *rng.pick(NAMES);
    let from = format!(
        "{} <{}@{}>",
        encode_subject(rng, from_name),
        ["alice", "bob", "news", "billing"][rng.below(4) as usize],
        rng.pick(DOMAINS)
    );
    let subject = *rng.pick(SUBJECTS);
    let subject = encode_subject(rng, subject);
    let mut h = String::new();
    h.push_str(&format!(
        "Return-Path: <bounce-{i}@{}>\n",
        rng.pick(DOMAINS)
    ));
    for hop in 0..rng.range(1, 4) {
        h.push_str(&format!(
            "Received: from mx{hop}.{} (mx{hop}.{} [192.0.2.{}])\n\tby mail.example.com with ESMTPS id {:x}\n\tfor <alice@example.com>; {}\n",
            rng.pick(DOMAINS),
            rng.pick(DOMAINS),
            rng.below(250) + 1,
            rng.next_u64(),
            rfc2822_date(secs.saturating_sub(hop), zone)
        ));
    }
    let mut has_date = true;
    let mut has_from = true;
    if malformed == Some(0) {
        // Missing From/Date/Message-ID.
        has_date = false;
        has_from = false;
    }
    if has_date {
        h.push_str(&format!("Date: {}\n", rfc2822_date(secs, zone)));
    }
    if has_from {
        h.push_str(&format!("From: {from}\n"));
    }
    h.push_str("To: Alice Example <alice@example.com>\n");
    if rng.chance(0.2) {
        h.push_str("Cc: bob@example.org, =?UTF-8?Q?J=C3=BCrgen?= <j@example.de>\n");
    }
    h.push_str(&format!("Subject: {subject}\n"));
    let message_id = if malformed == Some(0) {
        None
    } else {
        message_id
    };
    if let Some(id) = &message_id {
        h.push_str(&format!("Message-ID: {id}\n"));
    }
    if rng.chance(0.3) {
        h.push_str(&format!(
            "In-Reply-To: <{:x}@{}>\nReferences: <{:x}@{}>\n",
            rng.next_u64(),
            rng.pick(DOMAINS),
            rng.next_u64(),
            rng.pick(DOMAINS)
        ));
    }
    if malformed == Some(2) {
        h.push_str("This header line has no colon\n");
    }
    if rng.chance(0.2) {
        h.push_str("X-Mailer: mailferry corpus generator\n");
    }

    let mut raw = Vec::with_capacity(target + 1024);
    let multipart = big || target > 30_000 || rng.chance(0.3);
    let boundary = format!("=_mf_{seed:x}_{i}_{:x}", rng.next_u64() >> 32);
    let dots = rng.chance(0.3);
    if multipart {
        h.push_str("MIME-Version: 1.0\n");
        h.push_str(&format!(
            "Content-Type: multipart/mixed;\n boundary=\"{boundary}\"\n\n"
        ));
        raw.extend_from_slice(h.as_bytes());
        raw.extend_from_slice(b"This is a multi-part message in MIME format.\n\n");
        let used = if malformed == Some(1) {
            format!("{boundary}-broken")
        } else {
            boundary.clone()
        };
        raw.extend_from_slice(
            format!(
                "--{used}\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
            )
            .as_bytes(),
        );
        let text_len = (target / 10).clamp(200, 4_000);
        let text_target = (raw.len() + text_len).min(cap.saturating_sub(400));
        fill_text(rng, &mut raw, text_target, dots);
        raw.extend_from_slice(
            format!(
                "\n--{used}\nContent-Type: application/octet-stream; name=\"data-{i}.bin\"\n\
                 Content-Disposition: attachment; filename=\"data-{i}.bin\"\n\
                 Content-Transfer-Encoding: base64\n\n"
            )
            .as_bytes(),
        );
        let closing = used.len() + 8;
        let remaining = target.saturating_sub(raw.len() + closing);
        // 77 encoded bytes per line of 76 chars + LF.
        let encoded = remaining / 77 * 76;
        base64_lines(rng, &mut raw, encoded.max(4));
        if malformed != Some(1) {
            raw.extend_from_slice(format!("\n--{used}--\n").as_bytes());
        }
    } else {
        let ascii_only = rng.chance(0.3);
        h.push_str("MIME-Version: 1.0\n");
        if ascii_only {
            h.push_str(
                "Content-Type: text/plain; charset=us-ascii\nContent-Transfer-Encoding: 7bit\n\n",
            );
        } else {
            h.push_str(
                "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n",
            );
        }
        raw.extend_from_slice(h.as_bytes());
        if malformed == Some(3) {
            // One very long line (no folding at all).
            let n = (target / 2).clamp(1_000, 50_000);
            let n = n.min(cap.saturating_sub(raw.len() + 2));
            raw.extend(std::iter::repeat_n(b'x', n));
            raw.push(b'\n');
        }
        let body_target = target.min(cap);
        if ascii_only {
            let start = raw.len();
            fill_text(rng, &mut raw, body_target, dots);
            // Replace non-ASCII with '?', keeping the line structure.
            let tail: Vec<u8> = String::from_utf8_lossy(&raw[start..])
                .chars()
                .map(|c| if c.is_ascii() { c } else { '?' })
                .collect::<String>()
                .into_bytes();
            raw.truncate(start);
            raw.extend_from_slice(&tail);
        } else {
            fill_text(rng, &mut raw, body_target, dots);
        }
    }
    if malformed == Some(4) {
        // Headers only: no blank line, no body, no final newline.
        let end = find(&raw, b"\n\n").unwrap_or(raw.len());
        raw.truncate(end);
    }
    if raw.len() > cap {
        raw.truncate(cap);
        // Keep UTF-8 and the final newline sane after the cut.
        while let Some(&b) = raw.last() {
            if b >= 0x80 {
                raw.pop();
            } else {
                break;
            }
        }
        if raw.last() != Some(&b'\n') && !raw.is_empty() {
            raw.pop();
            raw.push(b'\n');
        }
    }
    Message {
        raw,
        internal_date: UNIX_EPOCH + Duration::from_secs(secs),
        flags,
        message_id,
    }
}
