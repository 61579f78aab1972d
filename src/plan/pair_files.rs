//! A fetch whose state does not know the folder's messages (state lost,
//! perhaps with a new UIDVALIDITY, or a Maildir copied or made by another
//! tool): the messages it is about to download may already be files in
//! the folder that no record accounts for. They are paired as after a
//! UIDVALIDITY change ([`super::rekey`]): unique Message-ID + size, else
//! equal content digest; each file pairs with one message at most, and
//! whatever cannot be proven the same is downloaded.

use std::collections::HashSet;

use super::rekey::{RekeyRecord, RekeySource, rekey};
use crate::types::Uid;

/// A file in the folder that no record of the state accounts for.
#[derive(Debug, Clone, PartialEq)]
pub struct UnclaimedFile {
    pub message_id: Option<String>,
    /// The size the server counts (CRLF line ends): `W=`, or from the bytes.
    pub size: u64,
    /// SHA-256 of the bytes as the server sends them, once read.
    pub digest: Option<[u8; 32]>,
}

/// The outcome of one call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FilePairing {
    /// (server UID, index into the files): already stored.
    pub pairs: Vec<(Uid, usize)>,
    /// Server messages to hash (downloaded, not stored) before calling
    /// again: their Message-ID is missing or shared and a file could match.
    pub need_server_digest: Vec<Uid>,
    /// Files to hash before calling again: those the messages above could be.
    pub need_file_digest: Vec<usize>,
}

/// Pairs the planned downloads (`server`, with Message-ID and
/// RFC822.SIZE) with unclaimed `files`. Call once without digests; if
/// digests are asked for, fill them in and call again. What is still
/// unpaired then is new.
pub fn pair_files(server: &[RekeySource], files: &[UnclaimedFile]) -> FilePairing {
    // rekey pairs UIDs: a file is known by its index + 1.
    let olds: Vec<RekeyRecord> = files
        .iter()
        .enumerate()
        .map(|(i, f)| RekeyRecord {
            uid: Uid(i as u32 + 1),
            message_id: f.message_id.clone(),
            size: f.size,
            digest: f.digest,
        })
        .collect();
    let out = rekey(&olds, server);
    let pairs: Vec<(Uid, usize)> = out
        .pairs
        .iter()
        .map(|&(file, uid)| (uid, file.0 as usize - 1))
        .collect();
    let mut need_file_digest = Vec::new();
    if !out.need_digest.is_empty() {
        let paired: HashSet<usize> = pairs.iter().map(|p| p.1).collect();
        let need: HashSet<Uid> = out.need_digest.iter().copied().collect();
        let sizes: HashSet<u64> = server
            .iter()
            .filter(|m| need.contains(&m.uid))
            .map(|m| m.size)
            .collect();
        need_file_digest = files
            .iter()
            .enumerate()
            .filter(|(i, f)| !paired.contains(i) && f.digest.is_none() && sizes.contains(&f.size))
            .map(|(i, _)| i)
            .collect();
    }
    let mut pairs = pairs;
    pairs.sort();
    FilePairing {
        pairs,
        need_server_digest: out.need_digest,
        need_file_digest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srv(uid: u32, mid: Option<&str>, size: u64, digest: Option<u8>) -> RekeySource {
        RekeySource {
            uid: Uid(uid),
            message_id: mid.map(Into::into),
            size,
            digest: digest.map(|d| [d; 32]),
        }
    }

    fn file(mid: Option<&str>, size: u64, digest: Option<u8>) -> UnclaimedFile {
        UnclaimedFile {
            message_id: mid.map(Into::into),
            size,
            digest: digest.map(|d| [d; 32]),
        }
    }

    #[test]
    fn unique_message_id_and_size_pair_without_reading_anything() {
        let files = [file(Some("a"), 10, None), file(Some("b"), 20, None)];
        let server = [
            srv(7, Some("b"), 20, None),
            srv(8, Some("a"), 10, None),
            srv(9, Some("c"), 30, None),
            srv(10, Some("a"), 11, None), // same id, other size: not the same
        ];
        let p = pair_files(&server, &files);
        assert_eq!(p.pairs, vec![(Uid(7), 1), (Uid(8), 0)]);
        assert!(p.need_server_digest.is_empty() && p.need_file_digest.is_empty());
    }

    #[test]
    fn missing_or_shared_ids_go_by_digest_and_only_candidates_are_hashed() {
        let mut files = vec![
            file(None, 50, None),
            file(Some("d"), 10, None),
            file(Some("d"), 10, None),
            file(None, 99, None), // no server message has this size
        ];
        let mut server = vec![
            srv(1, None, 50, None),
            srv(2, Some("d"), 10, None),
            srv(3, None, 7, None), // no file of that size: new, not hashed
        ];
        let p = pair_files(&server, &files);
        assert!(p.pairs.is_empty());
        assert_eq!(p.need_server_digest, vec![Uid(1), Uid(2)]);
        assert_eq!(p.need_file_digest, vec![0, 1, 2]);
        files[0].digest = Some([5; 32]);
        files[1].digest = Some([6; 32]);
        files[2].digest = Some([7; 32]);
        server[0].digest = Some([5; 32]);
        server[1].digest = Some([7; 32]);
        let p = pair_files(&server, &files);
        assert_eq!(p.pairs, vec![(Uid(1), 0), (Uid(2), 2)]);
        assert!(p.need_server_digest.is_empty() && p.need_file_digest.is_empty());
    }

    #[test]
    fn a_file_is_claimed_once_even_by_two_copies_of_its_message() {
        let files = [file(None, 10, Some(1))];
        let server = [srv(5, None, 10, Some(1)), srv(6, None, 10, Some(1))];
        let p = pair_files(&server, &files);
        assert_eq!(p.pairs, vec![(Uid(5), 0)]);
    }

    #[test]
    fn nothing_on_disk_pairs_nothing() {
        let p = pair_files(&[srv(1, Some("a"), 10, None)], &[]);
        assert_eq!(p, FilePairing::default());
    }
}
