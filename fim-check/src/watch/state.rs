//! What the watcher knows: the verified baseline (in memory, compactly
//! encoded) and the changes it has already reported.

use crate::baseline::codec::{decode_entry, encode_entry};
use crate::baseline::{BaselineError, Header, Reader};
use crate::compare::{diff, AttrChange};
use crate::entry::{cmp_paths, is_within, Entry};
use crate::report::Kind;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

/// A host path ordered like the walk (`cmp_paths`), so a directory's
/// descendants follow it and a full check is one merge-join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key(pub Box<[u8]>);

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_paths(&self.0, &other.0)
    }
}
impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The baseline's entries, each kept in its on-disk encoding (about a
/// quarter of a decoded `Entry`).
#[derive(Debug, Default)]
pub struct Baseline {
    pub header: Option<Header>,
    entries: BTreeMap<Key, Box<[u8]>>,
    /// The baseline carries an HMAC that was not verified (no key).
    pub unverified: bool,
}

/// Identity of the baseline file, to notice `fim-check update`.
pub type FileId = (u64, u64, i64, i64, u64);

pub fn file_id(path: &Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.mtime(), m.mtime_nsec(), m.size()))
}

impl Baseline {
    /// Reads and verifies the whole baseline (the tag is checked after the
    /// last entry: nothing is trusted before).
    pub fn load(path: &Path, key: Option<&[u8]>) -> Result<Baseline, BaselineError> {
        let file = File::open(path).map_err(|e| {
            BaselineError::Io(format!("cannot open (run `fim-check init` first): {e}"))
        })?;
        Baseline::from_reader(Reader::open(
            BufReader::with_capacity(256 * 1024, file),
            key,
        )?)
    }

    /// Reads every entry of an opened baseline; the tag is verified before
    /// this returns.
    pub fn from_reader<R: std::io::BufRead>(
        mut reader: Reader<R>,
    ) -> Result<Baseline, BaselineError> {
        let mut entries = BTreeMap::new();
        let mut buf = Vec::new();
        while let Some(e) = reader.next_entry()? {
            buf.clear();
            encode_entry(&mut buf, b"", &e);
            entries.insert(Key(e.path.into_boxed_slice()), buf.as_slice().into());
        }
        Ok(Baseline {
            header: Some(reader.header().clone()),
            entries,
            unverified: reader.unverified,
        })
    }

    pub fn from_entries(entries: impl IntoIterator<Item = Entry>) -> Baseline {
        let mut b = Baseline::default();
        let mut buf = Vec::new();
        for e in entries {
            buf.clear();
            encode_entry(&mut buf, b"", &e);
            b.entries
                .insert(Key(e.path.into_boxed_slice()), buf.as_slice().into());
        }
        b
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn decode(rec: &[u8]) -> Option<Entry> {
        // Records were verified and encoded by us: a decode error cannot
        // happen; treat it as "not recorded" rather than panic.
        decode_entry(rec, b"").ok()
    }

    pub fn get(&self, path: &[u8]) -> Option<Entry> {
        self.entries
            .get(&Key(path.into()))
            .and_then(|r| Self::decode(r))
    }

    /// Recorded paths strictly below `dir`.
    pub fn below(&self, dir: &[u8]) -> Vec<Vec<u8>> {
        self.entries
            .range(Key(dir.into())..)
            .map(|(k, _)| &k.0)
            .skip_while(|k| k.as_ref() == dir)
            .take_while(|k| is_within(k, dir))
            .map(|k| k.to_vec())
            .collect()
    }

    /// Every entry, in walk order.
    pub fn iter(&self) -> impl Iterator<Item = Entry> + '_ {
        self.entries.values().filter_map(|r| Self::decode(r))
    }
}

/// A change as the watcher reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub kind: Kind,
    pub ftype: &'static str,
    pub attributes: Vec<AttrChange>,
}

/// The change of `new` (current object, if any) against `old` (baseline
/// entry, if any); `prefix` hashes a prefix of the current file (growing
/// files).
pub fn change_of(
    old: Option<&Entry>,
    new: Option<&Entry>,
    prefix: &mut dyn FnMut(u64) -> Result<[u8; 32], String>,
) -> Result<Option<Found>, String> {
    Ok(match (old, new) {
        (None, None) => None,
        (None, Some(n)) => Some(Found {
            kind: Kind::Added,
            ftype: n.ftype.name(),
            attributes: Vec::new(),
        }),
        (Some(o), None) => Some(Found {
            kind: Kind::Removed,
            ftype: o.ftype.name(),
            attributes: Vec::new(),
        }),
        (Some(o), Some(n)) => {
            let attrs = diff(o, n, prefix)?;
            (!attrs.is_empty()).then(|| Found {
                kind: Kind::Changed,
                ftype: n.ftype.name(),
                attributes: attrs,
            })
        }
    })
}

/// Changes already reported and not yet accepted with `fim-check update`:
/// each is reported once. The same path is reported again only when the
/// change grows in nature (another kind, another type, an attribute that
/// had not changed before, e.g. `perm` after `sha256`), not each time new
/// values are written, so alerts do not flap; a path restored to its
/// recorded state is forgotten (and reported again if it changes again).
#[derive(Debug, Default)]
pub struct Reported {
    map: HashMap<Vec<u8>, Found>,
}

impl Reported {
    /// Records the current state of `path`; true when it must be reported.
    /// (`None` clears it: use `restore` to learn what was cleared.)
    pub fn update(&mut self, path: &[u8], found: Option<Found>) -> bool {
        match found {
            None => {
                // Back to the baseline's state (or never changed).
                self.map.remove(path);
                false
            }
            Some(f) => {
                let known = self.map.get(path).is_some_and(|old| {
                    old.kind == f.kind
                        && old.ftype == f.ftype
                        && f.attributes
                            .iter()
                            .all(|a| old.attributes.iter().any(|o| o.name == a.name))
                });
                if !known {
                    self.map.insert(path.to_vec(), f);
                } else if let Some(old) = self.map.get_mut(path) {
                    // Keep the latest values (for the record, not reported).
                    *old = f;
                }
                !known
            }
        }
    }

    /// Forgets `path`: it is back in its recorded state (or, if added,
    /// gone again). Returns the change that was outstanding.
    pub fn restore(&mut self, path: &[u8]) -> Option<Found> {
        self.map.remove(path)
    }

    pub fn contains(&self, path: &[u8]) -> bool {
        self.map.contains_key(path)
    }

    /// Reported paths strictly below `dir`.
    pub fn below(&self, dir: &[u8]) -> Vec<Vec<u8>> {
        self.map
            .keys()
            .filter(|k| k.as_slice() != dir && is_within(k, dir))
            .cloned()
            .collect()
    }

    pub fn paths(&self) -> Vec<Vec<u8>> {
        self.map.keys().cloned().collect()
    }

    /// Outstanding changes by kind: added, removed, changed.
    pub fn counts(&self) -> [u64; 3] {
        let (mut added, mut removed, mut changed) = (0u64, 0u64, 0u64);
        for f in self.map.values() {
            let count = match f.kind {
                Kind::Added => &mut added,
                Kind::Removed => &mut removed,
                Kind::Changed => &mut changed,
            };
            *count = count.saturating_add(1);
        }
        [added, removed, changed]
    }

    pub fn clear(&mut self) {
        self.map.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attrs::builtin_group;
    use crate::entry::FileType;

    fn entry(p: &str) -> Entry {
        let mut e = Entry::new(
            p.as_bytes().to_vec(),
            FileType::Regular,
            builtin_group("content").expect("group"),
        );
        e.sha256 = Some([1; 32]);
        e
    }

    #[test]
    fn descendants_follow_their_directory() {
        let b = Baseline::from_entries(["/a", "/a/b", "/a/b/c", "/a-", "/a.b", "/ab"].map(entry));
        assert_eq!(b.below(b"/a"), vec![b"/a/b".to_vec(), b"/a/b/c".to_vec()]);
        assert_eq!(b.get(b"/a/b").map(|e| e.sha256), Some(Some([1; 32])));
        assert!(b.get(b"/zz").is_none());
    }

    #[test]
    fn a_change_is_reported_once_until_it_changes_again() {
        let mut r = Reported::default();
        let f = |kind| Found {
            kind,
            ftype: "file",
            attributes: Vec::new(),
        };
        assert!(r.update(b"/x", Some(f(Kind::Added))));
        assert!(!r.update(b"/x", Some(f(Kind::Added))));
        assert_eq!(r.counts(), [1, 0, 0]);
        assert!(!r.update(b"/x", None));
        assert!(r.update(b"/x", Some(f(Kind::Added))));
    }
}
