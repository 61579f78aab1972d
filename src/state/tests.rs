use super::*;
use std::os::unix::fs::PermissionsExt;

const ACCT: &str = "imaps://alice@imap.example.com:993";
const TARGET: &str = "maildir:/home/alice/Mail";

fn rec(uv: u32, uid: u32) -> NewRecord {
    NewRecord {
        key: MsgKey::Imap {
            uidvalidity: UidValidity(uv),
            uid: Uid(uid),
        },
        message_id: Some(format!("<{uid}@example.com>")),
        size: Some(1000 + uid as u64),
        digest: None,
        internal_date: Some(1_600_000_000 + uid as i64),
        flags: Flags {
            seen: uid.is_multiple_of(2),
            keywords: vec!["$Forwarded".into()],
            ..Flags::default()
        },
        target: TARGET.into(),
        location: Some(format!("1.M1P1Q{uid}.host")),
    }
}

#[test]
fn open_creates_private_file_and_reopen_keeps_data() {
    let t = tempfile::tempdir().unwrap();
    let path = t.path().join("deep/er/state.db");
    {
        let mut s = State::open(&path).unwrap();
        assert_eq!(s.schema_version().unwrap(), schema::MIGRATIONS.len() as u32);
        let f = s.folder(ACCT, &FolderName::new("Archive")).unwrap();
        assert_eq!(
            (f.uidvalidity, f.uidnext, f.highestmodseq),
            (None, None, None)
        );
        s.set_folder_sync(
            f.id,
            Some(UidValidity(9)),
            Some(Uid(11)),
            Some(ModSeq(u64::from(u32::MAX) + 5)),
            100,
        )
        .unwrap();
        s.record_batch(f.id, &[rec(9, 10)], 100).unwrap();
    }
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let mut s = State::open(&path).unwrap();
    let f = s.folder(ACCT, &FolderName::new("Archive")).unwrap();
    assert_eq!(f.uidvalidity, Some(UidValidity(9)));
    assert_eq!(f.uidnext, Some(Uid(11)));
    assert_eq!(f.highestmodseq, Some(ModSeq(u64::from(u32::MAX) + 5)));
    assert_eq!(f.last_seen_at, Some(100));
    assert_eq!(s.known_uids(f.id, UidValidity(9), TARGET).unwrap().len(), 1);
    assert_eq!(s.folders(ACCT).unwrap(), vec![f.clone()]);
    assert_eq!(
        s.find_folder(ACCT, &FolderName::new("Archive")).unwrap(),
        Some(f)
    );
    assert_eq!(s.find_folder(ACCT, &FolderName::new("Nope")).unwrap(), None);
}

#[test]
fn newer_schema_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let path = t.path().join("state.db");
    drop(State::open(&path).unwrap());
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let e = State::open(&path).err().unwrap().to_string();
    assert!(e.contains("upgrade mailferry") && e.contains("99"), "{e}");
}

#[test]
fn second_lock_is_refused_until_released() {
    let t = tempfile::tempdir().unwrap();
    let path = t.path().join("s/state.db");
    let g = State::lock(&path).unwrap();
    assert!(g.path().ends_with("state.db.lock"));
    let e = State::lock(&path).unwrap_err();
    assert!(matches!(e, Error::Locked { .. }), "{e}");
    assert_eq!(e.exit_code() as i32, 75);
    drop(g);
    State::lock(&path).unwrap();
}

#[test]
fn record_batch_and_known_uids_round_trip() {
    let t = tempfile::tempdir().unwrap();
    let mut s = State::open(&t.path().join("state.db")).unwrap();
    let f = s.folder(ACCT, &FolderName::new("INBOX")).unwrap();
    let recs: Vec<_> = (1..=100).map(|u| rec(5, u)).collect();
    s.record_batch(f.id, &recs, 1_000).unwrap();
    // Re-recording (a rerun that found the file by name) keeps first_stored_at.
    let mut again = rec(5, 7);
    again.location = Some("moved".into());
    s.record_batch(f.id, &[again], 2_000).unwrap();
    let k = s.known_uids(f.id, UidValidity(5), TARGET).unwrap();
    assert_eq!(k.len(), 100);
    let m = &k[&Uid(7)];
    assert_eq!((m.first_stored_at, m.size), (1_000, Some(1007)));
    assert_eq!(m.flags, rec(5, 7).flags);
    let full = s.by_message_id(f.id, "<7@example.com>").unwrap();
    assert_eq!(full.len(), 1);
    assert_eq!(
        (full[0].id, full[0].location.as_deref()),
        (m.id, Some("moved"))
    );
    assert!(
        s.known_uids(f.id, UidValidity(6), TARGET)
            .unwrap()
            .is_empty()
    );
    assert!(
        s.known_uids(f.id, UidValidity(5), "imaps://other")
            .unwrap()
            .is_empty()
    );
    // Same source in a second target is a separate record.
    let mut other = rec(5, 7);
    other.target = "imaps://bob@new.example.com:993/INBOX".into();
    s.record_batch(f.id, &[other], 3_000).unwrap();
    assert_eq!(s.by_message_id(f.id, "<7@example.com>").unwrap().len(), 2);

    let seen = Flags {
        seen: true,
        flagged: true,
        ..Flags::default()
    };
    s.update_flags_batch(&[(m.id, seen.clone())]).unwrap();
    s.mark_deleted(&[m.id], "older-than 30d", 4_000).unwrap();
    s.mark_deleted(&[m.id], "again", 5_000).unwrap(); // first mark wins
    let m = &s.known_uids(f.id, UidValidity(5), TARGET).unwrap()[&Uid(7)];
    assert_eq!((&m.flags, m.deleted_at), (&seen, Some(4_000)));
    let full = s.messages(f.id).unwrap();
    let full = full.iter().find(|r| r.id == m.id).unwrap();
    assert_eq!(full.delete_reason.as_deref(), Some("older-than 30d"));
}

#[test]
fn pop3_and_digest_records() {
    let t = tempfile::tempdir().unwrap();
    let mut s = State::open(&t.path().join("state.db")).unwrap();
    let f = s
        .folder("pop3s://bob@pop.example.com:995", &FolderName::inbox())
        .unwrap();
    // Keywords, odd case and unknown system flags parse like Flags::from_imap.
    assert_eq!(
        flags_parse("\\SEEN $b $a \\Recent \\Draft"),
        Flags::from_imap(["\\SEEN", "$b", "$a", "\\Recent", "\\Draft"])
    );
    let mut a = rec(0, 0);
    a.key = MsgKey::Pop3 {
        uidl: Uidl("UID-1".into()),
    };
    let mut b = rec(0, 0);
    b.key = MsgKey::Digest;
    b.digest = Some(vec![7; 32]);
    let mut bad = b.clone();
    bad.digest = None;
    assert!(s.record_batch(f.id, &[a.clone(), bad], 10).is_err());
    assert!(
        s.known_uidls(f.id, TARGET).unwrap().is_empty(),
        "failed batch must roll back"
    );
    s.record_batch(f.id, &[a.clone(), b.clone()], 10).unwrap();
    s.record_batch(f.id, &[a, b], 20).unwrap();
    let k = s.known_uidls(f.id, TARGET).unwrap();
    assert_eq!(k.len(), 1);
    assert_eq!(k[&Uidl("UID-1".into())].first_stored_at, 10);
    assert_eq!(s.messages(f.id).unwrap().len(), 2);
}

#[test]
fn load_75k_rows() {
    let t = tempfile::tempdir().unwrap();
    let mut s = State::open(&t.path().join("state.db")).unwrap();
    let f = s.folder(ACCT, &FolderName::new("Bulk")).unwrap();
    for chunk in (1..=75_000u32).collect::<Vec<_>>().chunks(5_000) {
        let recs: Vec<_> = chunk.iter().map(|&u| rec(1, u)).collect();
        s.record_batch(f.id, &recs, 1).unwrap();
    }
    let start = std::time::Instant::now();
    let k = s.known_uids(f.id, UidValidity(1), TARGET).unwrap();
    eprintln!("known_uids: 75k rows in {:?}", start.elapsed());
    let start = std::time::Instant::now();
    let k2 = s.known_uids(f.id, UidValidity(1), TARGET).unwrap();
    eprintln!(
        "known_uids again: {} rows in {:?}",
        k2.len(),
        start.elapsed()
    );
    assert_eq!(k.len(), 75_000);
}

#[test]
fn uidvalidity_rekey() {
    let t = tempfile::tempdir().unwrap();
    let mut s = State::open(&t.path().join("state.db")).unwrap();
    let f = s.folder(ACCT, &FolderName::new("Sent")).unwrap();
    s.record_batch(f.id, &(1..=5).map(|u| rec(100, u)).collect::<Vec<_>>(), 1)
        .unwrap();
    s.record_batch(f.id, &[rec(200, 50)], 1).unwrap();
    // 1..=3 matched to 10..=12 (and 4 collides with an already known new UID).
    let pairs = [
        (Uid(1), Uid(10)),
        (Uid(2), Uid(11)),
        (Uid(3), Uid(12)),
        (Uid(4), Uid(50)),
        (Uid(99), Uid(60)),
    ];
    assert_eq!(
        s.rekey_uidvalidity(f.id, UidValidity(100), UidValidity(200), &pairs)
            .unwrap(),
        3
    );
    let new = s.known_uids(f.id, UidValidity(200), TARGET).unwrap();
    let mut uids: Vec<_> = new.keys().map(|u| u.0).collect();
    uids.sort();
    assert_eq!(uids, [10, 11, 12, 50]);
    let moved = s.by_message_id(f.id, "<1@example.com>").unwrap();
    assert_eq!(
        (moved[0].uidvalidity, moved[0].uid),
        (Some(UidValidity(200)), Some(Uid(10)))
    );
    assert_eq!(new[&Uid(10)].id, moved[0].id);
    let old = s.known_uids(f.id, UidValidity(100), TARGET).unwrap();
    assert_eq!(old.len(), 2);
    assert_eq!(
        s.folder(ACCT, &FolderName::new("Sent"))
            .unwrap()
            .uidvalidity,
        Some(UidValidity(200))
    );
    assert!(
        s.rekey_uidvalidity(f.id, UidValidity(200), UidValidity(200), &[])
            .is_err()
    );
}

#[test]
fn runs_history() {
    let t = tempfile::tempdir().unwrap();
    let mut s = State::open(&t.path().join("state.db")).unwrap();
    let a = s.begin_run("fetch", Some("backup"), 10).unwrap();
    let out = RunOutcome {
        result: "partial".into(),
        copied: 5,
        failed: 1,
        error: Some("x: y".into()),
    };
    s.finish_run(a, &out, 20).unwrap();
    let b = s.begin_run("push", None, 30).unwrap();
    let runs = s.recent_runs(None, 10).unwrap();
    assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), [b, a]);
    assert_eq!(runs[0].outcome, None);
    assert_eq!(runs[1].outcome.as_ref(), Some(&out));
    assert_eq!(s.recent_runs(Some("backup"), 10).unwrap().len(), 1);
    let old = s.folder(ACCT, &FolderName::new("Old")).unwrap().id;
    s.mark_folder_gone(old, 50).unwrap();
    assert_eq!(
        s.folder(ACCT, &FolderName::new("Old")).unwrap().gone_since,
        Some(50)
    );
}

#[test]
fn deletion_log_is_written_ahead_and_settled() {
    let t = tempfile::tempdir().unwrap();
    let mut s = State::open(&t.path().join("s.db")).unwrap();
    let f = s.folder(ACCT, &FolderName::inbox()).unwrap();
    s.record_batch(f.id, &[rec(9, 1), rec(9, 2)], 100).unwrap();
    let rows = s.messages(f.id).unwrap();
    let intent = |uid: u32, row: i64, method: &str| DeletionIntent {
        account: ACCT.into(),
        folder: FolderName::inbox(),
        uidvalidity: Some(UidValidity(9)),
        uid: Some(Uid(uid)),
        uidl: None,
        file: None,
        message_id: None,
        size: 10,
        date: 5,
        reason: "older-than 30d".into(),
        proof: Some("state".into()),
        method: method.into(),
        msg_row: Some(row),
    };
    let ids = s
        .log_deletions(
            &[
                intent(1, rows[0].id, "expunge"),
                intent(2, rows[1].id, "unlink"),
            ],
            200,
        )
        .unwrap();
    let pending = s.pending_deletions(ACCT, &FolderName::inbox()).unwrap();
    assert_eq!(pending.len(), 2);
    assert_eq!(pending[0].intent, intent(1, rows[0].id, "expunge"));
    s.finish_deletions(&ids, true, 300).unwrap();
    assert!(
        s.pending_deletions(ACCT, &FolderName::inbox())
            .unwrap()
            .is_empty()
    );
    let rows = s.messages(f.id).unwrap();
    assert_eq!(rows[0].deleted_at, Some(300));
    assert_eq!(
        rows[0].delete_reason.as_deref(),
        Some("prune: older-than 30d")
    );
    assert_eq!(rows[1].deleted_at, None);
    assert_eq!(rows[1].target_removed_at, Some(300));
    assert_eq!(s.rows_by_location(TARGET).unwrap().len(), 1);
    // settling twice changes nothing; a kept deletion marks nothing
    s.finish_deletions(&ids, false, 400).unwrap();
    let id = s
        .log_deletions(&[intent(1, rows[0].id, "dele")], 500)
        .unwrap();
    s.finish_deletions(&id, false, 600).unwrap();
    let rep = s.deletion_report().unwrap();
    assert_eq!((rep[0].deleted, rep[0].bytes, rep[0].pending), (2, 20, 0));
}

#[test]
fn due_for_deletion_follows_the_cutoff_and_deletions() {
    let t = tempfile::tempdir().unwrap();
    let mut s = State::open(&t.path().join("state.db")).unwrap();
    let f = s.folder(ACCT, &FolderName::new("INBOX")).unwrap();
    s.record_batch(f.id, &[rec(5, 1)], 1_000).unwrap();
    s.record_batch(f.id, &[rec(5, 2)], 2_000).unwrap();
    let due = |s: &State, cutoff| {
        s.any_due_for_deletion(f.id, UidValidity(5), TARGET, cutoff)
            .unwrap()
    };
    assert!(!due(&s, 999));
    assert!(due(&s, 1_000));
    assert!(
        !s.any_due_for_deletion(f.id, UidValidity(6), TARGET, i64::MAX)
            .unwrap()
    );
    let id1 = s.known_uids(f.id, UidValidity(5), TARGET).unwrap()[&Uid(1)].id;
    s.mark_deleted(&[id1], "delete-after 1d", 3_000).unwrap();
    assert!(!due(&s, 1_500), "the only due message is gone");
    assert!(due(&s, i64::MAX));
}

#[test]
fn copies_under_one_target_uidvalidity() {
    let t = tempfile::tempdir().unwrap();
    let mut s = State::open(&t.path().join("state.db")).unwrap();
    let f = s.folder(ACCT, &FolderName::new("INBOX")).unwrap();
    let at = |uid: u32, target: &str, location: Option<&str>| NewRecord {
        target: target.into(),
        location: location.map(Into::into),
        ..rec(1, uid)
    };
    let t1 = "imaps://bob@new:993/INBOX";
    assert_eq!(s.copies_under(f.id, t1, UidValidity(7)).unwrap(), (0, true));
    assert!(!s.has_copies(f.id, t1).unwrap());
    s.record_batch(f.id, &[at(1, t1, Some("7:1")), at(2, t1, Some("7:2"))], 1)
        .unwrap();
    // Another target's records do not count.
    s.record_batch(f.id, &[at(3, "imaps://x@y:993/INBOX", Some("9:1"))], 1)
        .unwrap();
    assert_eq!(s.copies_under(f.id, t1, UidValidity(7)).unwrap(), (2, true));
    assert!(s.has_copies(f.id, t1).unwrap());
    assert!(!s.has_copies(f.id, "imaps://bob@new:993/Other").unwrap());
    assert_eq!(
        s.copies_under(f.id, t1, UidValidity(77)).unwrap(),
        (2, false)
    );
    s.record_batch(f.id, &[at(4, t1, Some("70:4"))], 1).unwrap();
    assert_eq!(
        s.copies_under(f.id, t1, UidValidity(7)).unwrap(),
        (3, false),
        "7 is not 70"
    );
    // UIDL-keyed records (a Maildir or POP3 source) count the same.
    let f2 = s.folder(ACCT, &FolderName::new("Sent")).unwrap();
    let pop3 = |u: &str, location: Option<&str>| NewRecord {
        key: MsgKey::Pop3 {
            uidl: Uidl(u.into()),
        },
        ..at(0, t1, location)
    };
    s.record_batch(f2.id, &[pop3("a", Some("7:1"))], 1).unwrap();
    assert_eq!(
        s.copies_under(f2.id, t1, UidValidity(7)).unwrap(),
        (1, true)
    );
    s.record_batch(f2.id, &[pop3("b", None)], 1).unwrap();
    assert_eq!(
        s.copies_under(f2.id, t1, UidValidity(7)).unwrap(),
        (2, false),
        "no APPENDUID: where it is is unknown"
    );
}
