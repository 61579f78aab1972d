//! A fault-injecting TCP proxy for what Dovecot cannot do on demand: cut
//! the connection after N bytes from the server. The cut point can be
//! changed between runs (u64::MAX = never), so the same endpoint, and so
//! the same account identity in the state, sees a failure and then a
//! clean rerun.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub struct Proxy {
    pub port: u16,
    cut_after: Arc<AtomicU64>,
}

impl Proxy {
    /// Forwards 127.0.0.1:port → 127.0.0.1:target; each connection is cut
    /// once the server has sent `cut_after` bytes on it.
    pub fn start(target: u16, cut_after: u64) -> Proxy {
        Proxy::start_with(target, cut_after, 0)
    }

    /// As [`Proxy::start`], but the first connection is never cut: for
    /// the extra sessions of a parallel download.
    pub fn start_sparing_first(target: u16, cut_after: u64) -> Proxy {
        Proxy::start_with(target, cut_after, 1)
    }

    fn start_with(target: u16, cut_after: u64, spared: usize) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let cut = Arc::new(AtomicU64::new(cut_after));
        let c = cut.clone();
        std::thread::spawn(move || {
            for (i, client) in l.incoming().flatten().enumerate() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let limit = if i < spared {
                    u64::MAX
                } else {
                    c.load(Ordering::SeqCst)
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || pump(c2, s2, u64::MAX));
                std::thread::spawn(move || pump(server, client, limit));
            }
        });
        Proxy {
            port,
            cut_after: cut,
        }
    }

    /// Changes the cut point for new connections.
    pub fn set_cut_after(&self, n: u64) {
        self.cut_after.store(n, Ordering::SeqCst);
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, limit: u64) {
    let mut buf = [0u8; 16 * 1024];
    let mut sent = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let n = (n as u64).min(limit - sent) as usize;
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        sent += n as u64;
        if sent >= limit {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}
