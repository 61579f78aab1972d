use super::*;
use crate::types::{Uid, UidValidity, Uidl};
use std::time::Duration;

fn imap(uid: u32) -> SourceKey {
    SourceKey::Imap {
        uidvalidity: UidValidity(77),
        uid: Uid(uid),
    }
}

fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(all_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn creates_layout_with_private_modes() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("a/b/Mail");
    let md = Maildir::open_or_create(&root).unwrap();
    for sub in ["cur", "new", "tmp"] {
        let m = fs::metadata(root.join(sub)).unwrap();
        assert_eq!(m.mode() & 0o777, 0o700);
    }
    let dir = md.create_folder(&FolderName::new("Work/2024")).unwrap();
    assert_eq!(dir, root.join(".Work.2024"));
    assert!(dir.join("maildirfolder").is_file());
    assert!(dir.join("tmp").is_dir());
    md.create_folder(&FolderName::new("Work/2024")).unwrap(); // idempotent
    md.create_folder(&FolderName::new("Entwürfe")).unwrap();
    fs::create_dir(root.join(".Bad&Jjo!-name")).unwrap();
    fs::write(root.join(".notadir"), b"").unwrap();
    let l = md.list_folders_report().unwrap();
    let names: Vec<_> = l.folders.iter().map(|f| f.as_str()).collect();
    assert_eq!(names, ["INBOX", "Entwürfe", "Work/2024"]);
    assert_eq!(l.skipped.len(), 1);
    assert_eq!(l.skipped[0].0, ".Bad&Jjo!-name");
}

#[test]
fn deliver_and_scan_round_trip() {
    let t = tempfile::tempdir().unwrap();
    let md = Maildir::open_or_create(t.path()).unwrap();
    let folder = FolderName::new("Archive");
    let date = UNIX_EPOCH + Duration::from_secs(1_500_000_000);
    // Deferred commits with one syncfs where the file system allows it
    // (see fs_sync), and with an fsync per file when told not to.
    for (mode, base, per_file) in [
        (SyncMode::PerFile, 1, true),
        (SyncMode::Deferred, 10, false),
        (SyncMode::Deferred, 20, true),
    ] {
        let mut b = md
            .batch(&folder, "imaps://alice@example.com:993")
            .unwrap()
            .sync_mode(mode);
        if per_file {
            b = b.without_fs_sync();
        }
        let seen = Flags {
            seen: true,
            flagged: true,
            ..Flags::default()
        };
        let a = b
            .put(
                b"Subject: a\r\n\r\nhi\r\n",
                &imap(base),
                &seen,
                Some(date),
                false,
            )
            .unwrap();
        let p = b
            .put(
                b"x\n",
                &SourceKey::Pop3 {
                    uidl: Uidl(format!("U:{base}")),
                },
                &Flags::default(),
                None,
                true,
            )
            .unwrap();
        assert_eq!(a.size, 15); // CRLF -> LF
        assert_eq!(a.vsize, 18);
        assert_eq!(p.vsize, 3);
        if per_file {
            assert!(!b.uses_fs_sync());
        }
        let done = b.commit().unwrap();
        assert_eq!(done, vec![a.clone(), p.clone()]);
        assert!(b.commit().unwrap().is_empty());
        assert_eq!(fs::read(&a.path).unwrap(), b"Subject: a\n\nhi\n");
        assert!(a.path.to_str().unwrap().ends_with(":2,FS"));
        assert_eq!(p.path.parent().unwrap().file_name().unwrap(), "new");
        assert!(!p.path.to_str().unwrap().contains(':'));
        assert_eq!(fs::metadata(&a.path).unwrap().modified().unwrap(), date);
        assert_eq!(fs::metadata(&a.path).unwrap().mode() & 0o777, 0o600);
    }
    let mut msgs = md.scan(&folder).unwrap();
    msgs.sort_by_key(|m| m.source.as_ref().map(|s| s.tag()));
    assert_eq!(msgs.len(), 6);
    let acct = account_tag("imaps://alice@example.com:993");
    let m = msgs.iter().find(|m| m.source == Some(imap(1))).unwrap();
    assert!(m.flags.seen && m.flags.flagged && !m.in_new);
    assert_eq!(
        (m.size, m.vsize, m.account.as_deref()),
        (15, Some(18), Some(acct.as_str()))
    );
    let m = msgs
        .iter()
        .find(|m| {
            m.source
                == Some(SourceKey::Pop3 {
                    uidl: Uidl("U:10".into()),
                })
        })
        .unwrap();
    assert!(m.in_new && m.flags == Flags::default());
    // Nothing left in tmp/.
    assert!(
        fs::read_dir(t.path().join(".Archive/tmp"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[test]
fn scan_handles_foreign_names_and_dotfiles() {
    let t = tempfile::tempdir().unwrap();
    let md = Maildir::open_or_create(t.path()).unwrap();
    fs::write(t.path().join("cur/1795795241.M9P7.vm,S=5:2,Sa"), b"12345").unwrap();
    fs::write(t.path().join("cur/123.nosize:2,T"), b"abc").unwrap();
    fs::write(t.path().join("cur/.hidden"), b"abc").unwrap();
    fs::write(t.path().join("tmp/999.inflight"), b"abc").unwrap();
    let mut msgs = md.scan(&FolderName::inbox()).unwrap();
    msgs.sort_by(|a, b| a.unique.cmp(&b.unique));
    assert_eq!(msgs.len(), 2);
    assert_eq!(
        (msgs[0].unique.as_str(), msgs[0].size, msgs[0].flags.deleted),
        ("123.nosize", 3, true)
    );
    assert_eq!(
        (
            msgs[1].size,
            msgs[1].other_flags.as_str(),
            msgs[1].source.clone()
        ),
        (5, "a", None)
    );
}

#[test]
fn crlf_to_lf_across_chunk_boundaries_keeps_lone_cr() {
    let t = tempfile::tempdir().unwrap();
    let md = Maildir::open_or_create(t.path()).unwrap();
    let input: &[u8] = b"a\r\nb\rc\r\r\nd\r\n\r\ne\r";
    let expected: &[u8] = b"a\nb\rc\r\nd\n\ne\r";
    let mut b = md.batch(&FolderName::inbox(), "acct").unwrap();
    // Every split position, and byte-by-byte.
    let mut files = Vec::new();
    for split in 0..=input.len() {
        let mut p = b
            .begin(&imap(split as u32), &Flags::default(), None, false)
            .unwrap();
        p.write_all(&input[..split]).unwrap();
        p.write_all(&[]).unwrap();
        p.write_all(&input[split..]).unwrap();
        files.push(p.finish().unwrap());
    }
    let mut p = b
        .begin(&imap(1000), &Flags::default(), None, false)
        .unwrap();
    for c in input.chunks(1) {
        p.write_all(c).unwrap();
    }
    files.push(p.finish().unwrap());
    let mut asis = md
        .batch(&FolderName::inbox(), "acct")
        .unwrap()
        .line_endings(LineEndings::AsIs);
    let raw = asis
        .put(input, &imap(2000), &Flags::default(), None, false)
        .unwrap();
    b.commit().unwrap();
    asis.commit().unwrap();
    for f in &files {
        assert_eq!(fs::read(&f.path).unwrap(), expected, "{}", f.path.display());
        assert_eq!(f.size, expected.len() as u64);
        // vsize: each LF not preceded by CR counts one more byte.
        assert_eq!(f.vsize, expected.len() as u64 + 3);
    }
    assert_eq!(fs::read(&raw.path).unwrap(), input);
    assert_eq!(raw.vsize, input.len() as u64);
}

#[test]
fn dropped_pending_file_and_uncommitted_batch_leave_nothing() {
    let t = tempfile::tempdir().unwrap();
    let md = Maildir::open_or_create(t.path()).unwrap();
    {
        let mut b = md.batch(&FolderName::inbox(), "acct").unwrap();
        let mut p = b.begin(&imap(1), &Flags::default(), None, false).unwrap();
        p.write_all(b"partial").unwrap();
        drop(p);
        b.put(b"whole", &imap(2), &Flags::default(), None, false)
            .unwrap();
        // Dropped without commit (deferred mode): not visible, tmp cleaned.
    }
    assert_eq!(all_files(t.path()), Vec::<PathBuf>::new());
}

#[test]
fn hostile_folder_names_write_nothing_outside_root() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let md = Maildir::open_or_create(&root).unwrap();
    for bad in [
        "../x",
        "a/../../b",
        ".hidden",
        "a\0b",
        "",
        "..",
        "a/./b",
        "x/\u{1b}[2J",
    ] {
        let f = FolderName::new(bad);
        let e = md
            .batch(&f, "acct")
            .err()
            .unwrap_or_else(|| panic!("{bad:?} accepted"));
        assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        assert!(md.create_folder(&f).is_err());
        assert!(md.scan(&f).is_err());
    }
    let outside: Vec<_> = fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside, ["root"]);
    let inside: Vec<_> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(inside.len(), 3, "{inside:?}");
}

#[test]
fn keyword_letters_go_into_names_and_follow_changes() {
    let t = tempfile::tempdir().unwrap();
    let md = Maildir::open_or_create(t.path()).unwrap();
    let inbox = FolderName::inbox();
    let kw = md.keywords(&inbox).unwrap();
    let seen = Flags {
        seen: true,
        keywords: vec!["$Forwarded".into(), "Work".into()],
        ..Flags::default()
    };
    let letters = kw.letters(&seen.keywords).unwrap();
    assert_eq!(letters, "ab");
    let mut b = md.batch(&inbox, "acct").unwrap();
    b.set_keyword_letters(&letters);
    let f = b.put(b"m", &imap(1), &seen, None, false).unwrap();
    // Only the next message carries them.
    let g = b.put(b"n", &imap(2), &seen, None, false).unwrap();
    b.commit().unwrap();
    assert!(
        f.path.to_str().unwrap().ends_with(":2,Sab"),
        "{}",
        f.path.display()
    );
    assert!(
        g.path.to_str().unwrap().ends_with(":2,S"),
        "{}",
        g.path.display()
    );
    assert_eq!(
        fs::read_to_string(t.path().join(KEYWORDS_FILE)).unwrap(),
        "0 $Forwarded\n1 Work\n"
    );
    // The server dropped Work and added Later; a local client's letter
    // `z` (no keyword mailferry knows) stays.
    let local = f.path.with_file_name(format!(
        "{}z",
        f.path.file_name().unwrap().to_str().unwrap()
    ));
    fs::rename(&f.path, &local).unwrap();
    let now = Flags {
        seen: true,
        keywords: vec!["$Forwarded".into(), "Later".into()],
        ..Flags::default()
    };
    let add = kw.letters(&now.keywords).unwrap();
    let p = md
        .set_flags_and_keywords(&local, &now, &add, &kw.letter("Work").unwrap().to_string())
        .unwrap();
    assert!(p.to_str().unwrap().ends_with(":2,Sacz"), "{}", p.display());
    // No change: the file stays where it is, in new/ too.
    let h = {
        let mut b = md.batch(&inbox, "acct").unwrap();
        let h = b
            .put(b"o", &imap(3), &Flags::default(), None, true)
            .unwrap();
        b.commit().unwrap();
        h
    };
    let h2 = md
        .set_flags_and_keywords(&h.path, &Flags::default(), "", "ab")
        .unwrap();
    assert_ne!(h2, h.path, "a new/ file without info moves to cur/ once");
    assert_eq!(
        md.set_flags_and_keywords(&h2, &Flags::default(), "", "ab")
            .unwrap(),
        h2
    );
}

#[test]
fn set_flags_moves_new_to_cur_and_keeps_unknown_letters() {
    let t = tempfile::tempdir().unwrap();
    let md = Maildir::open_or_create(t.path()).unwrap();
    let mut b = md.batch(&FolderName::inbox(), "acct").unwrap();
    let f = b
        .put(b"m", &imap(5), &Flags::default(), None, true)
        .unwrap();
    b.commit().unwrap();
    let seen = Flags {
        seen: true,
        ..Flags::default()
    };
    let p = md.set_flags(&f.path, &seen).unwrap();
    assert!(!f.path.exists());
    assert_eq!(p.parent().unwrap(), t.path().join("cur"));
    assert!(p.to_str().unwrap().ends_with(":2,S"));
    // A Dovecot keyword letter added by another client survives.
    let with_kw = p.with_file_name(format!("{}b", p.file_name().unwrap().to_str().unwrap()));
    fs::rename(&p, &with_kw).unwrap();
    let both = Flags {
        seen: true,
        answered: true,
        draft: true,
        ..Flags::default()
    };
    let p2 = md.set_flags(&with_kw, &both).unwrap();
    assert!(
        p2.to_str().unwrap().ends_with(":2,DRSb"),
        "{}",
        p2.display()
    );
    assert_eq!(md.set_flags(&p2, &both).unwrap(), p2);
    let msgs = md.scan(&FolderName::inbox()).unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].unique, f.unique);
    assert_eq!(msgs[0].source, Some(imap(5)));
    md.remove(&p2).unwrap();
    md.remove(&p2).unwrap(); // already gone: fine
    assert!(md.scan(&FolderName::inbox()).unwrap().is_empty());
}

#[test]
fn clean_tmp_removes_only_old_debris() {
    let t = tempfile::tempdir().unwrap();
    let md = Maildir::open_or_create(t.path()).unwrap();
    fs::write(t.path().join("tmp/debris"), b"x").unwrap();
    let now = SystemTime::now();
    assert_eq!(md.clean_tmp(&FolderName::inbox(), now).unwrap(), 0);
    let later = now + TMP_MAX_AGE + Duration::from_secs(60);
    assert_eq!(md.clean_tmp(&FolderName::inbox(), later).unwrap(), 1);
    assert!(!t.path().join("tmp/debris").exists());
}

#[test]
fn ten_thousand_messages_in_one_batch() {
    let t = tempfile::tempdir().unwrap();
    let md = Maildir::open_or_create(t.path()).unwrap();
    let folder = FolderName::new("Bulk");
    // Naming and scanning at scale, not durability: no fsync, so it is quick.
    let mut b = md.batch(&folder, "acct").unwrap().without_fsync();
    let body = b"Subject: x\r\n\r\nbody\r\n";
    for uid in 1..=10_000 {
        b.put(body, &imap(uid), &Flags::default(), None, false)
            .unwrap();
    }
    assert_eq!(b.commit().unwrap().len(), 10_000);
    let msgs = md.scan(&folder).unwrap();
    assert_eq!(msgs.len(), 10_000);
    let uids: BTreeSet<u32> = msgs
        .iter()
        .map(|m| match m.source {
            Some(SourceKey::Imap { uid, .. }) => uid.0,
            _ => panic!("no key"),
        })
        .collect();
    assert_eq!(uids.len(), 10_000);
}

#[test]
fn lossless_line_endings() {
    use super::LineEndings;
    assert_eq!(LineEndings::lossless_for(b"a\r\nb\r\n"), LineEndings::Lf);
    assert_eq!(LineEndings::lossless_for(b"no newline"), LineEndings::Lf);
    assert_eq!(
        LineEndings::lossless_for(b"a\r\nbare\nlf\r\n"),
        LineEndings::AsIs
    );
    assert_eq!(LineEndings::lossless_for(b"a\r\r\n"), LineEndings::AsIs);
    assert_eq!(
        LineEndings::lossless_for(b"lone\rcr\r\n"),
        LineEndings::AsIs
    );
    assert_eq!(
        LineEndings::lossless_for(b"ends in cr\r"),
        LineEndings::AsIs
    );
}

#[test]
fn sizes_are_the_same_whichever_way_line_endings_are_chosen() {
    use super::LineEndings;
    let t = tempfile::tempdir().unwrap();
    let md = Maildir::open_or_create(t.path()).unwrap();
    let folder = FolderName::new("INBOX");
    let mut b = md.batch(&folder, "acct").unwrap().without_fsync();
    let msgs: [&[u8]; 6] = [
        b"Subject: a\r\n\r\nhi\r\n",
        b"no newline",
        b"a\r\nbare\nlf\r\n",
        b"a\r\r\n",
        b"ends in cr\r",
        b"\r\n\r\n.\r\n",
    ];
    for (i, msg) in msgs.iter().enumerate() {
        b.set_line_endings(LineEndings::lossless_for(msg));
        let counted = b.put(msg, &imap(2 * i as u32 + 1), &Flags::default(), None, false);
        b.set_line_endings_for(msg);
        let known = b.put(msg, &imap(2 * i as u32 + 2), &Flags::default(), None, false);
        let (counted, known) = (counted.unwrap(), known.unwrap());
        assert_eq!(
            (known.size, known.vsize),
            (counted.size, counted.vsize),
            "{msg:?}"
        );
        // W= is the size on the wire, whichever storage was chosen.
        assert_eq!(
            known.vsize,
            msg.len() as u64 + msg.iter().filter(|&&c| c == b'\n').count() as u64
                - msg.windows(2).filter(|w| w == b"\r\n").count() as u64,
            "{msg:?}"
        );
    }
    b.commit().unwrap();
}
