//! Round trips, tampering, truncation, and a property test feeding corrupt
//! baselines to the reader: it must return an error, never panic.

use super::*;
use crate::attrs::builtin_group;
use crate::entry::{FileType, Timestamp};
use proptest::prelude::*;

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

fn header(authenticated: bool) -> Header {
    Header {
        tool_version: "0.1.0".into(),
        created_at: "2026-11-24T00:00:00Z".into(),
        node: "node-a".into(),
        config_source: "builtin".into(),
        config_digest: "d".repeat(64),
        limits: vec![],
        authenticated,
    }
}

fn entries() -> Vec<Entry> {
    let content = builtin_group("content").expect("group");
    (0..50)
        .map(|i| {
            let mut e = Entry::new(
                format!("/etc/f{i:03}").into_bytes(),
                FileType::Regular,
                content,
            );
            e.size = i;
            e.mtime = Timestamp {
                sec: 1_700_000_000 - 2 * i64::from(i as u8),
                nsec: 5,
            };
            e.sha256 = Some([i as u8; 32]);
            e.xattrs = vec![(
                b"security.selinux".to_vec(),
                b"system_u:object_r:etc_t:s0\0".to_vec(),
            )];
            e
        })
        .collect()
}

fn build(key: Option<&[u8]>) -> Vec<u8> {
    let mut w = Writer::new(Vec::new(), &header(key.is_some()), key).expect("writer");
    for e in entries() {
        w.write(&e).expect("write");
    }
    w.finish().expect("finish").0
}

fn read_all(bytes: &[u8], key: Option<&[u8]>) -> Result<(Header, Vec<Entry>), BaselineError> {
    let mut r = Reader::open(bytes, key)?;
    let mut out = Vec::new();
    while let Some(e) = r.next_entry()? {
        out.push(e);
    }
    Ok((r.header().clone(), out))
}

#[test]
fn keyed_round_trip() {
    let bytes = build(Some(KEY));
    let (h, es) = read_all(&bytes, Some(KEY)).expect("read");
    assert_eq!(h, header(true));
    assert_eq!(es, entries());
    // Compact: well under AIDE's ~187 bytes per entry.
    assert!(bytes.len() < 50 * 120, "{} bytes", bytes.len());
}

#[test]
fn wrong_key_or_missing_key_or_stripped_auth() {
    let bytes = build(Some(KEY));
    let err = read_all(&bytes, Some(b"another key of 16+ bytes")).unwrap_err();
    assert!(
        matches!(err, BaselineError::Integrity(ref m) if m.contains("HMAC")),
        "{err:?}"
    );
    // Without a key the entries are readable but flagged unverified.
    let mut r = Reader::open(bytes.as_slice(), None).expect("open");
    assert!(r.unverified);
    while r.next_entry().expect("entry").is_some() {}
    // An unauthenticated baseline offered where a key is expected: refused.
    let plain = build(None);
    let err = read_all(&plain, Some(KEY)).unwrap_err();
    assert!(
        matches!(err, BaselineError::Integrity(ref m) if m.contains("not authenticated")),
        "{err:?}"
    );
    assert!(read_all(&plain, None).is_ok());
}

#[test]
fn every_single_byte_edit_is_detected() {
    let bytes = build(Some(KEY));
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x01;
        assert!(
            read_all(&b, Some(KEY)).is_err(),
            "flip at byte {i} went unnoticed"
        );
    }
}

#[test]
fn every_truncation_is_detected() {
    for key in [Some(KEY), None] {
        let bytes = build(key);
        for n in 0..bytes.len() {
            assert!(
                read_all(&bytes[..n], key).is_err(),
                "truncated to {n} bytes accepted"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(read_all(&longer, key).is_err());
    }
}

/// The entry stream is bounded: a reader refuses more than its limit
/// (exit 3 territory: an integrity error), before reading the excess.
#[test]
fn entry_count_is_bounded() {
    let key = b"0123456789abcdef0123";
    let bytes = build(Some(key));
    let mut r = Reader::open(bytes.as_slice(), Some(key))
        .expect("open")
        .with_max_entries(10);
    let mut n = 0;
    let err = loop {
        match r.next_entry() {
            Ok(Some(_)) => n += 1,
            Ok(None) => panic!("read past the limit"),
            Err(e) => break e,
        }
    };
    assert_eq!(n, 10);
    assert!(
        matches!(&err, BaselineError::Integrity(m) if m.contains("more than 10 entries")),
        "{err:?}"
    );
    assert!(
        read_all(&bytes, Some(key)).is_ok(),
        "the default limit is far above 50"
    );
}

#[test]
fn other_format_versions_are_a_mismatch() {
    let mut bytes = build(None);
    bytes[8] = 9;
    assert!(matches!(
        read_all(&bytes, None),
        Err(BaselineError::Mismatch(_))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random edits (overwrite, insert, delete) of a valid baseline.
    #[test]
    fn corrupt_baselines_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
        keyed in any::<bool>(),
    ) {
        let key = keyed.then_some(KEY);
        let mut bytes = build(key);
        for (at, byte, op) in edits {
            let i = at.index(bytes.len().max(1));
            match op {
                0 if i < bytes.len() => bytes[i] = byte,
                1 => bytes.insert(i.min(bytes.len()), byte),
                _ if i < bytes.len() => { bytes.remove(i); }
                _ => {}
            }
        }
        let original = build(key);
        let result = read_all(&bytes, key);
        if bytes != original {
            prop_assert!(result.is_err(), "an edited baseline was accepted");
        }
    }

    /// Arbitrary bytes behind a valid magic and version.
    #[test]
    fn random_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&body);
        let _ = read_all(&bytes, None);
        let _ = read_all(&bytes, Some(KEY));
    }
}
