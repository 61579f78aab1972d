//! A minimal HTTP/1.1 client for the OAuth2 token and device endpoints:
//! one form POST, one (JSON) answer, one connection per request.
//!
//! Hand-written over [`crate::net`] rather than reqwest or hyper: what a
//! token endpoint needs is one request with a Content-Length and a
//! response framed by Content-Length, chunked encoding or the end of the
//! connection, a few times a day. reqwest would bring hyper, h2, http,
//! tower and a second TLS setup (about 100 crates) for that, while
//! `net` already has TCP and TLS with the system roots, certificate
//! checks and timeouts that the mail connections use. Every step here is
//! under a timeout, the response is capped at [`MAX_RESPONSE`], and the
//! framing parser is pure and unit-tested.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::form::HttpUrl;
use crate::endpoint::{Timeouts, TlsOptions};
use crate::error::{Error, Result};
use crate::net;

/// The largest response accepted, headers and body: a token answer is a
/// few kilobytes, so anything near this is not one.
pub const MAX_RESPONSE: usize = 1 << 20;

/// The largest header block accepted.
const MAX_HEAD: usize = 64 * 1024;

/// An HTTP response: status, media type and the (de-chunked) body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// `Content-Type` without parameters, lower case ("" when absent).
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as a JSON object, if it is one.
    pub fn json(&self) -> Option<serde_json::Map<String, serde_json::Value>> {
        match serde_json::from_slice(&self.body).ok()? {
            serde_json::Value::Object(m) => Some(m),
            _ => None,
        }
    }
}

/// POSTs `body` (form-encoded) to `url` and reads the answer: TCP connect
/// and TLS handshake under `t.connect`, the request and the whole
/// response under `t.command`. HTTPS verifies the certificate against the
/// system roots (plus `tls`'s CA file, for tests).
pub async fn post_form(
    url: &HttpUrl,
    body: &str,
    tls: &TlsOptions,
    t: Timeouts,
) -> Result<Response> {
    let server = url.server();
    let mut req = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: mailferry/{}\r\n\
         Accept: application/json\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        url.target,
        url.host_header(),
        env!("CARGO_PKG_VERSION"),
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body.as_bytes());
    let tcp = net::tcp_connect(&url.host, url.port, t.connect).await?;
    if url.tls {
        let (mut s, _) = net::tls_handshake(tcp, &url.host, url.port, tls, t.connect).await?;
        exchange(&mut s, &req, &server, t.command).await
    } else {
        let mut s = tcp;
        exchange(&mut s, &req, &server, t.command).await
    }
}

/// Sends `req` and reads one response, all under `limit`.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    req: &[u8],
    server: &str,
    limit: Duration,
) -> Result<Response> {
    let lost = |e: std::io::Error| Error::connect(server, format!("HTTP connection lost: {e}"));
    net::timed(limit, server, "the HTTP response", async {
        s.write_all(req).await.map_err(lost)?;
        s.flush().await.map_err(lost)?;
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            let n = s.read(&mut chunk).await.map_err(lost)?;
            buf.extend_from_slice(&chunk[..n]);
            match parse_response(&buf, n == 0) {
                Ok(Some(r)) => return Ok(r),
                Ok(None) if buf.len() > MAX_RESPONSE => {
                    return Err(Error::protocol(
                        server,
                        format!(
                            "HTTP response larger than {MAX_RESPONSE} bytes; not a token endpoint?"
                        ),
                    ));
                }
                Ok(None) => {}
                Err(m) => return Err(Error::protocol(server, format!("bad HTTP response: {m}"))),
            }
        }
    })
    .await
}

/// One response from the bytes read so far: `Ok(None)` when more are
/// needed, an error when they can never make a response (`eof`: the
/// server closed the connection). Interim 1xx responses are skipped.
pub fn parse_response(buf: &[u8], eof: bool) -> std::result::Result<Option<Response>, String> {
    let mut at = 0;
    loop {
        let rest = &buf[at..];
        let Some(head_len) = memchr::memmem::find(rest, b"\r\n\r\n").map(|i| i + 4) else {
            if rest.len() > MAX_HEAD {
                return Err("header block too large".into());
            }
            return match eof {
                true if rest.is_empty() && at == 0 => {
                    Err("connection closed without a response".into())
                }
                true => Err("connection closed in the middle of the headers".into()),
                false => Ok(None),
            };
        };
        let head = std::str::from_utf8(&rest[..head_len - 4])
            .map_err(|_| "header block is not text".to_string())?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let mut parts = status_line.splitn(3, ' ');
        let (version, code) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        if !version.starts_with("HTTP/1.") {
            return Err(format!("not an HTTP/1.x status line: {:.60}", status_line));
        }
        let status: u16 = code
            .parse()
            .ok()
            .filter(|c| (100..600).contains(c))
            .ok_or_else(|| format!("bad status code {code:.10}"))?;
        let mut length = None;
        let mut chunked = false;
        let mut content_type = String::new();
        for l in lines {
            let Some((name, value)) = l.split_once(':') else {
                return Err(format!("bad header line {l:.60}"));
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                let n: usize = value
                    .parse()
                    .map_err(|_| format!("bad Content-Length {value:.20}"))?;
                if length.is_some_and(|m| m != n) {
                    return Err("conflicting Content-Length headers".into());
                }
                length = Some(n);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value
                    .rsplit(',')
                    .next()
                    .is_some_and(|v| v.trim().eq_ignore_ascii_case("chunked"));
                if !chunked {
                    return Err(format!("unsupported Transfer-Encoding {value:.30}"));
                }
            } else if name.eq_ignore_ascii_case("content-type") {
                content_type = value
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
            }
        }
        let body = &rest[head_len..];
        if (100..200).contains(&status) {
            at += head_len;
            continue;
        }
        let done = |body: Vec<u8>| {
            Ok(Some(Response {
                status,
                content_type: content_type.clone(),
                body,
            }))
        };
        if status == 204 || status == 304 {
            return done(Vec::new());
        }
        if chunked {
            return match dechunk(body)? {
                Some(b) => done(b),
                None if eof => Err("connection closed in the middle of a chunked body".into()),
                None => Ok(None),
            };
        }
        return match length {
            Some(n) if body.len() >= n => done(body[..n].to_vec()),
            Some(n) if eof => Err(format!(
                "connection closed after {} of {n} body bytes",
                body.len()
            )),
            Some(_) => Ok(None),
            None if eof => done(body.to_vec()),
            None => Ok(None),
        };
    }
}

/// Decodes a complete chunked body (trailers skipped), `None` while
/// incomplete.
fn dechunk(mut b: &[u8]) -> std::result::Result<Option<Vec<u8>>, String> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = memchr::memmem::find(b, b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&b[..eol]).map_err(|_| "bad chunk size line")?;
        let hex = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(hex, 16)
            .ok()
            .filter(|&n| n <= MAX_RESPONSE)
            .ok_or_else(|| format!("bad chunk size {hex:.20}"))?;
        b = &b[eol + 2..];
        if size == 0 {
            // Trailer fields, then an empty line.
            loop {
                let Some(eol) = memchr::memmem::find(b, b"\r\n") else {
                    return Ok(None);
                };
                if eol == 0 {
                    return Ok(Some(out));
                }
                b = &b[eol + 2..];
            }
        }
        if b.len() < size + 2 {
            return Ok(None);
        }
        if &b[size..size + 2] != b"\r\n" {
            return Err("chunk not followed by CRLF".into());
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(s: &[u8]) -> Response {
        parse_response(s, false).unwrap().expect("complete")
    }

    #[test]
    fn content_length_framing() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: 2\r\n\r\n{}";
        let got = done(r);
        assert_eq!(
            (got.status, got.content_type.as_str(), &got.body[..]),
            (200, "application/json", &b"{}"[..])
        );
        assert!(got.json().unwrap().is_empty());
        // Incomplete until the last byte; an early close is an error.
        assert_eq!(parse_response(&r[..r.len() - 1], false), Ok(None));
        assert!(parse_response(&r[..r.len() - 1], true).is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-", true).is_err());
        assert!(parse_response(b"", true).is_err());
    }

    #[test]
    fn chunked_framing_with_extensions_and_trailers() {
        let r = b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n\
                  4;x=y\r\n{\"er\r\n8\r\nror\":1}\n\r\n0\r\nX-T: 1\r\n\r\n";
        let got = done(r);
        assert_eq!(got.status, 400);
        assert_eq!(got.body, b"{\"error\":1}\n");
        for cut in 1..r.len() {
            assert_eq!(parse_response(&r[..cut], false), Ok(None), "cut at {cut}");
        }
        assert!(
            parse_response(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
                false
            )
            .is_err()
        );
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false).is_err()
        );
    }

    #[test]
    fn close_delimited_interim_and_odd_responses() {
        let r = b"HTTP/1.0 200 OK\r\n\r\nhello";
        assert_eq!(parse_response(r, false), Ok(None));
        assert_eq!(parse_response(r, true).unwrap().unwrap().body, b"hello");
        let r = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(done(r).status, 204);
        assert!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n", false).is_err());
        assert!(parse_response(b"HTTP/1.1 99 x\r\n\r\n", false).is_err());
        assert!(
            parse_response(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
                false
            )
            .is_err()
        );
        let huge = vec![b'a'; MAX_HEAD + 1];
        assert!(parse_response(&huge, false).is_err());
    }

    /// A whole exchange against a local server: the request is what a
    /// token endpoint expects, the chunked answer arrives in pieces.
    #[tokio::test]
    async fn post_form_against_a_local_server() {
        use tokio::io::{AsyncBufReadExt, BufReader};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let mut r = BufReader::new(s);
            let mut head = Vec::new();
            loop {
                let mut line = String::new();
                r.read_line(&mut line).await.unwrap();
                if line == "\r\n" {
                    break;
                }
                head.push(line.trim_end().to_string());
            }
            let len: usize = head
                .iter()
                .find_map(|h| h.strip_prefix("Content-Length: "))
                .unwrap()
                .parse()
                .unwrap();
            let mut body = vec![0; len];
            r.read_exact(&mut body).await.unwrap();
            let mut s = r.into_inner();
            for part in [
                &b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"[..],
                b"Transfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n",
                b"2\r\n1}\r\n0\r\n\r\n",
            ] {
                s.write_all(part).await.unwrap();
                s.flush().await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (head, String::from_utf8(body).unwrap())
        });
        let url = HttpUrl::parse(&format!("http://127.0.0.1:{port}/tok?x=1")).unwrap();
        let t = Timeouts {
            connect: Duration::from_secs(5),
            command: Duration::from_secs(5),
        };
        let r = post_form(&url, "a=1&b=2", &TlsOptions::default(), t)
            .await
            .unwrap();
        assert_eq!(r.json().unwrap()["a"], 1);
        let (head, body) = server.await.unwrap();
        assert_eq!(head[0], "POST /tok?x=1 HTTP/1.1");
        assert!(head.contains(&format!("Host: 127.0.0.1:{port}")));
        assert!(head.contains(&"Content-Type: application/x-www-form-urlencoded".to_string()));
        assert_eq!(body, "a=1&b=2");
    }

    /// A self-signed certificate for 127.0.0.1 (PEM) and its key.
    fn self_signed() -> (Vec<u8>, openssl::pkey::PKey<openssl::pkey::Private>) {
        use openssl::{asn1::Asn1Time, bn::BigNum, hash::MessageDigest, x509};
        let ec =
            openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
        let key =
            openssl::pkey::PKey::from_ec_key(openssl::ec::EcKey::generate(&ec).unwrap()).unwrap();
        let mut name = x509::X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "token test").unwrap();
        let name = name.build();
        let mut b = x509::X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        b.set_serial_number(&BigNum::from_u32(1).unwrap().to_asn1_integer().unwrap())
            .unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        let san = x509::extension::SubjectAlternativeName::new()
            .ip("127.0.0.1")
            .build(&b.x509v3_context(None, None))
            .unwrap();
        b.append_extension(san).unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        (b.build().to_pem().unwrap(), key)
    }

    /// HTTPS: the certificate is verified (a CA the client does not trust
    /// is refused), and with it trusted the exchange works over TLS.
    #[tokio::test]
    async fn https_verifies_the_certificate() {
        use openssl::ssl::{SslAcceptor, SslMethod};
        let (pem, key) = self_signed();
        let cert = openssl::x509::X509::from_pem(&pem).unwrap();
        let mut acc = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
        acc.set_private_key(&key).unwrap();
        acc.set_certificate(&cert).unwrap();
        let acc = acc.build();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (s, _) = l.accept().await.unwrap();
                let ssl = openssl::ssl::Ssl::new(acc.context()).unwrap();
                let mut tls = tokio_openssl::SslStream::new(ssl, s).unwrap();
                if std::pin::Pin::new(&mut tls).accept().await.is_err() {
                    continue;
                }
                let mut buf = vec![0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let body = r#"{"access_token":"x"}"#;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            }
        });
        let url = HttpUrl::parse(&format!("https://127.0.0.1:{port}/token")).unwrap();
        let t = Timeouts {
            connect: Duration::from_secs(5),
            command: Duration::from_secs(5),
        };
        let e = post_form(&url, "a=1", &TlsOptions::default(), t)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("not trusted"), "{e}");
        let d = tempfile::tempdir().unwrap();
        let ca = d.path().join("ca.pem");
        std::fs::write(&ca, &pem).unwrap();
        let tls = TlsOptions {
            ca_file: Some(ca),
            ..TlsOptions::default()
        };
        let r = post_form(&url, "a=1", &tls, t).await.unwrap();
        assert_eq!(r.json().unwrap()["access_token"], "x");
    }

    /// A server that accepts and never answers costs the timeout, not a hang.
    #[tokio::test]
    async fn a_silent_server_times_out() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let _keep = tokio::spawn(async move {
            let (_s, _) = l.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let url = HttpUrl::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let t = Timeouts {
            connect: Duration::from_secs(5),
            command: Duration::from_millis(200),
        };
        let e = post_form(&url, "", &TlsOptions::default(), t)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Timeout { .. }), "{e}");
    }
}
