//! The framed transport: reads exactly one server response (line plus any
//! `{n}` literals) at a time and writes batched commands.
//!
//! Own framing rather than async-imap's `ImapStream`, because we need: a
//! timeout per socket read (a 30 MB message must not time out, a silent
//! server must), access to buffered bytes (STARTTLS injection check), and
//! EOF reported as an error instead of a short stream (crates.md §2).

use std::ops::Range;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{Error, Result};
use crate::flow::{Budget, Lease};
use crate::net::MailStream;

/// Largest single response we accept; a message bigger than this is
/// certainly not mail, and buffering it would exhaust memory.
const MAX_RESPONSE: usize = 1 << 30;
const READ_CHUNK: usize = 64 * 1024;
/// With [`Io::detach`] on, literals this large are read into a buffer of
/// their own: a message body then costs one copy (out of the TLS layer)
/// and its own size in memory, not a second copy and a grown `buf`.
const DETACH_MIN: usize = 64 * 1024;

/// Buffered, framed connection to one server.
pub(crate) struct Io {
    stream: MailStream,
    buf: Vec<u8>,
    /// Start of the first unconsumed byte in `buf`.
    start: usize,
    wbuf: Vec<u8>,
    pub server: String,
    pub read_timeout: Duration,
    /// What is being waited for, for error messages ("UID FETCH … in folder X").
    pub ctx: String,
    /// Text of an untagged BYE, to explain a following EOF.
    pub bye: Option<String>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Set after EOF or a read/write error: the session is unusable.
    pub broken: bool,
    /// A pause the account's server asked for: nothing is sent before it.
    pub pace: crate::imap::Pace,
    next_tag: u64,
    /// Reads land here first. Reading straight into `buf`'s spare capacity
    /// made the TLS stream zero all of it on every read (a memset of
    /// megabytes per 16 KB record: 40% of a fetch's CPU); a fixed,
    /// already-initialised buffer costs one copy instead.
    scratch: Box<[u8]>,
    /// While set, every literal is leased from this budget before its
    /// bytes are read (message bodies: see [`crate::flow`]).
    pub lease_from: Option<Budget>,
    /// Leases of the last response's literals, until taken or the next read.
    leases: Vec<Lease>,
    /// While set, large literals are detached: read into their own buffer,
    /// and written in the response as `{@K}`, which the parser gives as
    /// `Val::Detached(K)` ([`Io::take_detached`]).
    pub detach: bool,
    /// The last response's detached literals, by `K`.
    detached: Vec<Option<Vec<u8>>>,
}

impl Io {
    pub fn new(stream: MailStream, server: String, read_timeout: Duration) -> Io {
        Io {
            stream,
            buf: Vec::with_capacity(READ_CHUNK),
            start: 0,
            wbuf: Vec::new(),
            server,
            read_timeout,
            ctx: "the server greeting".into(),
            bye: None,
            bytes_in: 0,
            bytes_out: 0,
            broken: false,
            pace: Default::default(),
            next_tag: 1,
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
            lease_from: None,
            leases: Vec::new(),
            detach: false,
            detached: Vec::new(),
        }
    }

    /// Bytes received but not yet consumed as a response.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Gives the socket back (for STARTTLS); refuses if the server sent
    /// anything we have not read, which would be injected plaintext.
    pub fn into_stream(self) -> Result<MailStream> {
        if self.buffered() > 0 {
            return Err(Error::connect(
                &self.server,
                "STARTTLS: the server sent data after its OK, before the TLS handshake (possible injection attack); refusing",
            ));
        }
        Ok(self.stream)
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.stream, MailStream::Tls(_))
    }

    /// A fresh tag, `M1`, `M2`, … (never reused within a connection).
    pub fn tag(&mut self) -> String {
        let t = format!("M{}", self.next_tag);
        self.next_tag += 1;
        t
    }

    /// Queues raw bytes; nothing is sent until [`Io::flush`].
    pub fn queue(&mut self, bytes: &[u8]) {
        self.wbuf.extend_from_slice(bytes);
    }

    /// Bytes queued but not yet flushed.
    pub fn queued(&self) -> usize {
        self.wbuf.len()
    }

    /// Forgets queued bytes (a batch we decided not to send after all).
    pub fn queue_clear(&mut self) {
        self.wbuf.clear();
    }

    /// Sends everything queued, with the command timeout on the write (a
    /// server that stops reading must not hang us).
    pub async fn flush(&mut self) -> Result<()> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let data = std::mem::take(&mut self.wbuf);
        let r = self.write_direct(&data).await;
        self.wbuf = data;
        self.wbuf.clear();
        if self.wbuf.capacity() > 4 * READ_CHUNK {
            self.wbuf.shrink_to(READ_CHUNK);
        }
        r
    }

    /// Sends a message body: queued with the rest when small, else written
    /// straight from `bytes` after what is queued, so a 30 MB literal is
    /// never copied into (and kept as the capacity of) the write buffer.
    pub async fn send_payload(&mut self, bytes: &[u8]) -> Result<()> {
        if bytes.len() < DETACH_MIN {
            self.queue(bytes);
            return Ok(());
        }
        self.flush().await?;
        self.write_direct(bytes).await
    }

    async fn write_direct(&mut self, data: &[u8]) -> Result<()> {
        if self.broken {
            return Err(self.lost());
        }
        self.pace.wait().await;
        let limit = self.read_timeout;
        let r = tokio::time::timeout(limit, async {
            self.stream.write_all(data).await?;
            self.stream.flush().await
        })
        .await;
        match r {
            Ok(Ok(())) => {
                self.bytes_out += data.len() as u64;
                Ok(())
            }
            Ok(Err(e)) => {
                self.broken = true;
                Err(Error::connect(
                    &self.server,
                    format!("connection error while sending {}: {e}", self.ctx),
                ))
            }
            Err(_) => {
                self.broken = true;
                Err(Error::Timeout {
                    server: self.server.clone(),
                    what: format!("the server to accept {}", self.ctx),
                })
            }
        }
    }

    fn lost(&self) -> Error {
        let bye = match &self.bye {
            Some(t) => format!(" (server said BYE: {t})"),
            None => String::new(),
        };
        Error::connect(
            &self.server,
            format!("connection lost during {}{bye}", self.ctx),
        )
    }

    /// Reads more bytes (at least one) into `buf` with the per-read timeout.
    async fn fill(&mut self, want: usize) -> Result<()> {
        self.buf.reserve(want.max(READ_CHUNK));
        let n = self.read_some().await?;
        self.buf.extend_from_slice(&self.scratch[..n]);
        Ok(())
    }

    /// Reads up to `want` more bytes of a detached literal into `lit`; what
    /// the same read brought beyond the literal goes to `buf`.
    async fn fill_detached(&mut self, lit: &mut Vec<u8>, want: usize) -> Result<()> {
        let n = self.read_some().await?;
        let mine = n.min(want);
        lit.extend_from_slice(&self.scratch[..mine]);
        self.buf.extend_from_slice(&self.scratch[mine..n]);
        Ok(())
    }

    /// One socket read into `scratch`, with the per-read timeout; EOF is
    /// an error. Returns the bytes read.
    async fn read_some(&mut self) -> Result<usize> {
        if self.broken {
            return Err(self.lost());
        }
        let limit = self.read_timeout;
        match tokio::time::timeout(limit, self.stream.read(&mut self.scratch)).await {
            Ok(Ok(0)) => {
                self.broken = true;
                Err(self.lost())
            }
            Ok(Ok(n)) => {
                self.bytes_in += n as u64;
                Ok(n)
            }
            Ok(Err(e)) => {
                self.broken = true;
                let bye = self
                    .bye
                    .clone()
                    .map(|b| format!(" (BYE: {b})"))
                    .unwrap_or_default();
                Err(Error::connect(
                    &self.server,
                    format!("connection lost during {}: {e}{bye}", self.ctx),
                ))
            }
            Err(_) => {
                self.broken = true;
                Err(Error::Timeout {
                    server: self.server.clone(),
                    what: format!(
                        "the response to {} (no data for {}s)",
                        self.ctx,
                        limit.as_secs()
                    ),
                })
            }
        }
    }

    /// Drops consumed bytes from the front; returns the shift applied.
    fn compact(&mut self) -> usize {
        let shift = self.start;
        if shift > 0 {
            self.buf.drain(..shift);
            self.start = 0;
        }
        if self.buf.capacity() > 4 * READ_CHUNK && self.buf.len() < READ_CHUNK {
            self.buf.shrink_to(2 * READ_CHUNK);
        }
        shift
    }

    /// The leases taken for the last response's literals (one lease for
    /// all of them), for whoever keeps its bytes.
    pub fn take_lease(&mut self) -> Lease {
        self.leases
            .drain(..)
            .fold(Lease::default(), |all, l| all.merge(l))
    }

    /// Reads the next complete response and returns its byte range; the
    /// bytes stay valid until the next call. EOF before a complete
    /// response is an error, never a silent end.
    pub async fn next(&mut self) -> Result<Range<usize>> {
        self.leases.clear();
        self.detached.clear();
        self.compact();
        let mut scan = self.start;
        loop {
            if let Some(i) = memchr_lf(&self.buf[scan..]) {
                let line_end = scan + i + 1;
                if let Some(n) = literal_len(&self.buf[self.start..line_end]) {
                    let need = line_end
                        .checked_add(n)
                        .filter(|&x| x - self.start <= MAX_RESPONSE)
                        .ok_or_else(|| {
                            self.broken = true;
                            Error::protocol(
                                &self.server,
                                format!("response to {} is larger than 1 GiB; refusing", self.ctx),
                            )
                        })?;
                    if let Some(b) = &self.lease_from
                        && self.buf.len() < need
                    {
                        let l = b.lease(n, &self.leases).await;
                        self.leases.push(l);
                    }
                    if self.detach && n >= DETACH_MIN {
                        scan = self.detach_literal(line_end, n).await?;
                        continue;
                    }
                    while self.buf.len() < need {
                        let want = need - self.buf.len();
                        self.fill(want.min(16 << 20)).await?;
                    }
                    scan = need;
                    continue;
                }
                let r = self.start..line_end;
                self.start = line_end;
                return Ok(r);
            }
            scan = self.buf.len();
            if scan - self.start > MAX_RESPONSE {
                self.broken = true;
                return Err(Error::protocol(&self.server, "response line too long"));
            }
            self.fill(READ_CHUNK).await?;
        }
    }

    /// Reads the `n`-byte literal announced by the line ending at
    /// `line_end` into a buffer of its own, and puts `{@K}` in the line in
    /// place of `{n}`. Returns where scanning for the rest goes on.
    async fn detach_literal(&mut self, line_end: usize, n: usize) -> Result<usize> {
        let line = &self.buf[self.start..line_end];
        let open = line.iter().rposition(|&b| b == b'{').expect("a literal");
        let open = self.start + open - usize::from(open > 0 && line[open - 1] == b'~');
        let have = (self.buf.len() - line_end).min(n);
        let mut lit = Vec::with_capacity(n);
        lit.extend_from_slice(&self.buf[line_end..line_end + have]);
        let marker = format!("{{@{}}}\r\n", self.detached.len());
        self.buf
            .splice(open..line_end + have, marker.bytes())
            .for_each(drop);
        while lit.len() < n {
            let want = n - lit.len();
            self.fill_detached(&mut lit, want).await?;
        }
        self.detached.push(Some(lit));
        Ok(open + marker.len())
    }

    /// Detached literal `k` of the last response ([`Io::detach`]), once.
    pub fn take_detached(&mut self, k: usize) -> Option<Vec<u8>> {
        self.detached.get_mut(k)?.take()
    }

    pub fn slice(&self, r: Range<usize>) -> &[u8] {
        &self.buf[r]
    }

    pub async fn shutdown(&mut self) {
        let _ = self.stream.shutdown().await;
    }
}

fn memchr_lf(s: &[u8]) -> Option<usize> {
    s.iter().position(|&b| b == b'\n')
}

/// `Some(n)` when a line ends in a literal announcement `{n}` (or `~{n}`).
fn literal_len(line: &[u8]) -> Option<usize> {
    let l = line.strip_suffix(b"\n")?;
    let l = l.strip_suffix(b"\r").unwrap_or(l);
    let l = l.strip_suffix(b"}")?;
    let open = l.iter().rposition(|&b| b == b'{')?;
    let digits = &l[open + 1..];
    if digits.is_empty() || digits.len() > 12 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_detection() {
        assert_eq!(literal_len(b"* 1 FETCH (BODY[] {12}\r\n"), Some(12));
        assert_eq!(literal_len(b"* 1 FETCH (BODY[] ~{0}\r\n"), Some(0));
        assert_eq!(literal_len(b"* OK {x}\r\n"), None);
        assert_eq!(literal_len(b"* OK done\r\n"), None);
    }
}
