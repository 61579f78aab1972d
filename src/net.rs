//! TCP and TLS plumbing shared by the IMAP and POP3 clients: connect with a
//! timeout, wrap in TLS with the user's trust settings, and describe the
//! peer certificate. Protocol-specific STARTTLS/STLS lives in each client.

use std::future::Future;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::endpoint::TlsOptions;
use crate::error::{Error, Result};

/// What `check` shows about the server's certificate, and what pinning
/// compares.
#[derive(Debug, Clone)]
pub struct PeerCert {
    pub subject: String,
    pub issuer: String,
    pub not_after: String,
    pub sha256: [u8; 32],
}

impl PeerCert {
    /// Reads subject, issuer, expiry and fingerprint from a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<PeerCert> {
        let x = openssl::x509::X509::from_der(der)
            .map_err(|e| Error::connect("tls", format!("unreadable peer certificate: {e}")))?;
        let digest = x
            .digest(openssl::hash::MessageDigest::sha256())
            .map_err(|e| Error::connect("tls", e.to_string()))?;
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(&digest);
        Ok(PeerCert {
            subject: name_to_string(x.subject_name()),
            issuer: name_to_string(x.issuer_name()),
            not_after: x.not_after().to_string(),
            sha256,
        })
    }

    /// `sha256:AB:CD:…`, the form `--tls-fingerprint` accepts.
    pub fn fingerprint(&self) -> String {
        let hex: Vec<String> = self.sha256.iter().map(|b| format!("{b:02X}")).collect();
        format!("sha256:{}", hex.join(":"))
    }
}

fn name_to_string(n: &openssl::x509::X509NameRef) -> String {
    n.entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?");
            let val = e.data().to_string().unwrap_or_default();
            format!("{key}={val}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs `fut` with a time limit; `what` says what was being waited for.
pub async fn timed<T>(
    limit: Duration,
    server: &str,
    what: &str,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(Error::Timeout {
            server: server.to_string(),
            what: what.to_string(),
        }),
    }
}

/// Opens a TCP connection with a time limit, naming the cause on failure
/// (refused, unreachable, unknown host).
pub async fn tcp_connect(host: &str, port: u16, limit: Duration) -> Result<TcpStream> {
    let server = format!("{host}:{port}");
    timed(limit, &server, "TCP connect", async {
        let s = TcpStream::connect((host, port))
            .await
            .map_err(|e| Error::connect(&server, format!("cannot connect: {e}")))?;
        let _ = s.set_nodelay(true);
        Ok(s)
    })
    .await
}

/// A TLS stream over any transport (plain TCP, or a test proxy).
pub type TlsStream<S> = async_native_tls::TlsStream<S>;

/// Performs the TLS handshake with system roots plus `--ca-file`, or with a
/// pinned fingerprint. An untrusted certificate is an error that shows its
/// fingerprint and says how to trust it.
pub async fn tls_handshake<S>(
    stream: S,
    host: &str,
    port: u16,
    opts: &TlsOptions,
    limit: Duration,
) -> Result<(TlsStream<S>, PeerCert)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let server = format!("{host}:{port}");
    let mut connector = async_native_tls::TlsConnector::new();
    if opts.min_tls13 {
        connector = connector.min_protocol_version(Some(async_native_tls::Protocol::Tlsv13));
    }
    if let Some(ca) = &opts.ca_file {
        let pem = std::fs::read(ca).map_err(|e| Error::io(ca, e))?;
        let certs = native_tls_certs(&pem)
            .map_err(|e| Error::Usage(format!("--ca-file {}: {e}", ca.display())))?;
        for c in certs {
            connector = connector.add_root_certificate(c);
        }
    }
    if opts.fingerprint.is_some() {
        // Pinning replaces chain and name checks: the fingerprint is
        // compared below before a single protocol byte is sent.
        connector = connector
            .danger_accept_invalid_certs(true)
            .danger_accept_invalid_hostnames(true);
    }
    let tls = timed(limit, &server, "TLS handshake", async {
        connector
            .connect(host, stream)
            .await
            .map_err(|e| classify_tls_error(&server, e))
    })
    .await?;
    let der = tls
        .peer_certificate()
        .ok()
        .flatten()
        .and_then(|c| c.to_der().ok())
        .ok_or_else(|| Error::connect(&server, "TLS: server sent no certificate"))?;
    let cert = PeerCert::from_der(&der)?;
    if let Some(pin) = opts.fingerprint
        && pin != cert.sha256
    {
        return Err(Error::connect(
            &server,
            format!(
                "TLS: certificate fingerprint {} does not match the pinned one; refusing (certificate changed or connection intercepted)",
                cert.fingerprint()
            ),
        ));
    }
    Ok((tls, cert))
}

fn native_tls_certs(pem: &[u8]) -> std::result::Result<Vec<async_native_tls::Certificate>, String> {
    let stack = openssl::x509::X509::stack_from_pem(pem).map_err(|e| e.to_string())?;
    if stack.is_empty() {
        return Err("no PEM certificate in file".into());
    }
    stack
        .iter()
        .map(|x| {
            let der = x.to_der().map_err(|e| e.to_string())?;
            async_native_tls::Certificate::from_der(&der).map_err(|e| e.to_string())
        })
        .collect()
}

fn classify_tls_error(server: &str, e: async_native_tls::Error) -> Error {
    let msg = e.to_string();
    if msg.contains("certificate verify failed") {
        let why = msg
            .split("certificate verify failed")
            .nth(1)
            .map(|s| s.trim_matches(|c: char| c == ':' || c == ' ' || c == ')' || c == '('))
            .filter(|s| !s.is_empty())
            .map(|s| format!(" ({s})"))
            .unwrap_or_default();
        Error::connect(
            server,
            format!(
                "TLS: server certificate not trusted{why}; add its CA with --ca-file PEM, or pin it with --tls-fingerprint sha256:… (see `mailferry check`)"
            ),
        )
    } else {
        Error::connect(server, format!("TLS handshake failed: {msg}"))
    }
}

/// Fetches the server's leaf certificate without trusting it, so an
/// "untrusted certificate" error can show the fingerprint to pin.
pub async fn peek_certificate<S>(stream: S, host: &str, limit: Duration) -> Option<PeerCert>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let connector = async_native_tls::TlsConnector::new()
        .danger_accept_invalid_certs(true)
        .danger_accept_invalid_hostnames(true);
    let tls = tokio::time::timeout(limit, connector.connect(host, stream))
        .await
        .ok()?
        .ok()?;
    let der = tls.peer_certificate().ok()??.to_der().ok()?;
    PeerCert::from_der(&der).ok()
}

/// The TCP stream under TLS, read through a buffer: OpenSSL asks for a
/// record's 5-byte header and then its body, so without one every TLS
/// record costs two or more `recv` calls (about 290,000 for a 560 MB POP3
/// download; some 20,000 with the buffer).
pub type BufferedTcp = tokio::io::BufReader<TcpStream>;

/// Size of [`BufferedTcp`]'s buffer: several TLS records per `recv`.
const TLS_READ_BUFFER: usize = 128 * 1024;

/// TLS over `tcp` (implicit TLS or after STARTTLS/STLS), as the transport
/// both mail clients use; see [`tls_handshake`] for the checks.
pub async fn start_tls(
    tcp: TcpStream,
    host: &str,
    port: u16,
    opts: &TlsOptions,
    limit: Duration,
) -> Result<(MailStream, PeerCert)> {
    let buffered = tokio::io::BufReader::with_capacity(TLS_READ_BUFFER, tcp);
    let (tls, cert) = tls_handshake(buffered, host, port, opts, limit).await?;
    Ok((MailStream::Tls(Box::new(tls)), cert))
}

/// SHA-256 of a byte string: message content digests for dedup and verify.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    openssl::sha::sha256(data)
}

/// The one transport type both mail clients use: plain TCP (before
/// STARTTLS, or with `--insecure-plaintext`) or TLS over TCP. An enum, not
/// a trait object, so it stays `Debug + Send + Unpin` as async-imap wants.
#[derive(Debug)]
pub enum MailStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<BufferedTcp>>),
}

impl AsyncRead for MailStream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            MailStream::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            MailStream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MailStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            MailStream::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            MailStream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            MailStream::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            MailStream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            MailStream::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            MailStream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
