//! Encoding of one entry record: LEB128 integers, the path stored as the
//! length shared with the previous path plus the new suffix, and only the
//! fields the entry's attribute set records.

use crate::attrs::{Attr, AttrSet};
use crate::entry::{cmp_paths, Entry, FileType, Timestamp};
use std::cmp::Ordering;

/// Largest accepted record; a longer length prefix means corruption.
pub const MAX_RECORD: usize = 16 << 20;

const FLAG_RECURSIVE: u64 = 1;
const FLAG_HAS_SHA256: u64 = 2;

pub fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    // The low seven bits of `v`, by design.
    let low7 = |v: u64| u8::try_from(v & 0x7f).unwrap_or(0);
    while v >= 0x80 {
        out.push(low7(v) | 0x80);
        v >>= 7;
    }
    out.push(low7(v));
}

fn put_ivarint(out: &mut Vec<u8>, v: i64) {
    // Zigzag: the bit pattern of the i64, read as a u64.
    put_uvarint(
        out,
        u64::from_ne_bytes(((v << 1) ^ (v >> 63)).to_ne_bytes()),
    );
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_uvarint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_time(out: &mut Vec<u8>, t: Timestamp) {
    put_ivarint(out, t.sec);
    put_uvarint(out, u64::from(t.nsec));
}

/// Appends the record for `e` (without its length prefix).
pub fn encode_entry(out: &mut Vec<u8>, prev_path: &[u8], e: &Entry) {
    let shared = prev_path
        .iter()
        .zip(&e.path)
        .take_while(|(a, b)| a == b)
        .count();
    put_uvarint(out, shared as u64);
    put_bytes(out, e.path.get(shared..).unwrap_or_default());
    out.push(e.ftype as u8);
    put_uvarint(out, u64::from(e.attrs.bits()));
    let has_sha = e.wants_hash() && e.sha256.is_some();
    put_uvarint(
        out,
        if e.recursive { FLAG_RECURSIVE } else { 0 } | if has_sha { FLAG_HAS_SHA256 } else { 0 },
    );
    let a = e.attrs;
    if a.has(Attr::Perm) {
        put_uvarint(out, u64::from(e.perm));
    }
    if a.has(Attr::Uid) {
        put_uvarint(out, u64::from(e.uid));
    }
    if a.has(Attr::Gid) {
        put_uvarint(out, u64::from(e.gid));
    }
    if a.has(Attr::Size) {
        put_uvarint(out, e.size);
    }
    if a.has(Attr::Mtime) {
        put_time(out, e.mtime);
    }
    if a.has(Attr::Ctime) {
        put_time(out, e.ctime);
    }
    if a.has(Attr::Inode) {
        put_uvarint(out, e.inode);
    }
    if a.has(Attr::Links) {
        put_uvarint(out, e.links);
    }
    if a.has(Attr::Device) && e.ftype.is_device() {
        put_uvarint(out, e.rdev);
    }
    if a.has(Attr::LinkTarget) && e.ftype == FileType::Symlink {
        put_bytes(out, &e.link_target);
    }
    if let (true, Some(d)) = (has_sha, &e.sha256) {
        out.extend_from_slice(d);
    }
    if a.has(Attr::Xattrs) {
        put_uvarint(out, e.xattrs.len() as u64);
        for (k, v) in &e.xattrs {
            put_bytes(out, k);
            put_bytes(out, v);
        }
    }
}

/// A cursor over one record; every read is bounds-checked.
#[derive(Debug)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    pub fn uvarint(&mut self) -> Result<u64, String> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or("record ends inside a number")?;
            self.pos += 1;
            if shift == 63 && b > 1 {
                return Err("number overflows 64 bits".into());
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("number overflows 64 bits".into())
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        u32::try_from(self.uvarint()?).map_err(|_| format!("{what} out of range"))
    }

    fn ivarint(&mut self) -> Result<i64, String> {
        let u = self.uvarint()?;
        // Zig-zag: u >> 1 < 2^63 always fits; the low bit is the sign.
        let magnitude = i64::try_from(u >> 1).map_err(|_| "number out of range")?;
        Ok(if u & 1 == 0 { magnitude } else { !magnitude })
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or("record too short")?;
        let s = self.buf.get(self.pos..end).ok_or("record too short")?;
        self.pos = end;
        Ok(s)
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = usize::try_from(self.uvarint()?).map_err(|_| "length out of range")?;
        self.take(n)
    }

    fn time(&mut self) -> Result<Timestamp, String> {
        let sec = self.ivarint()?;
        let nsec = self.u32("nanoseconds")?;
        if nsec >= 1_000_000_000 {
            return Err("nanoseconds out of range".into());
        }
        Ok(Timestamp { sec, nsec })
    }

    pub fn is_done(&self) -> bool {
        self.pos == self.buf.len()
    }
}

/// Decodes one record; `prev_path` is the previous entry's path (empty for
/// the first). Enforces strictly increasing, well-formed paths.
pub fn decode_entry(rec: &[u8], prev_path: &[u8]) -> Result<Entry, String> {
    let mut c = Cursor::new(rec);
    let shared = usize::try_from(c.uvarint()?).map_err(|_| "bad path prefix")?;
    if shared > prev_path.len() {
        return Err("path prefix longer than the previous path".into());
    }
    let mut path = prev_path
        .get(..shared)
        .ok_or("path prefix longer than the previous path")?
        .to_vec();
    path.extend_from_slice(c.bytes()?);
    if !path.starts_with(b"/")
        || path.contains(&0)
        || (path.len() > 1 && path.ends_with(b"/"))
        || path.windows(2).any(|w| w == b"//")
    {
        return Err(format!(
            "malformed path {:?}",
            String::from_utf8_lossy(&path)
        ));
    }
    if !prev_path.is_empty() && cmp_paths(prev_path, &path) != Ordering::Less {
        return Err("entries out of order".into());
    }
    let code = c.take(1)?.first().copied().ok_or("record too short")?;
    let ftype = FileType::from_code(code).ok_or("unknown file type")?;
    let bits = u32::try_from(c.uvarint()?).map_err(|_| "bad attribute set")?;
    let attrs = AttrSet::from_bits(bits).ok_or("unknown attribute bits")?;
    let flags = c.uvarint()?;
    if flags & !(FLAG_RECURSIVE | FLAG_HAS_SHA256) != 0 {
        return Err("unknown entry flags".into());
    }
    let mut e = Entry::new(path, ftype, attrs);
    e.recursive = flags & FLAG_RECURSIVE != 0;
    if attrs.has(Attr::Perm) {
        e.perm = c.u32("permissions")?;
    }
    if attrs.has(Attr::Uid) {
        e.uid = c.u32("uid")?;
    }
    if attrs.has(Attr::Gid) {
        e.gid = c.u32("gid")?;
    }
    if attrs.has(Attr::Size) {
        e.size = c.uvarint()?;
    }
    if attrs.has(Attr::Mtime) {
        e.mtime = c.time()?;
    }
    if attrs.has(Attr::Ctime) {
        e.ctime = c.time()?;
    }
    if attrs.has(Attr::Inode) {
        e.inode = c.uvarint()?;
    }
    if attrs.has(Attr::Links) {
        e.links = c.uvarint()?;
    }
    if attrs.has(Attr::Device) && ftype.is_device() {
        e.rdev = c.uvarint()?;
    }
    if attrs.has(Attr::LinkTarget) && ftype == FileType::Symlink {
        e.link_target = c.bytes()?.to_vec();
    }
    if flags & FLAG_HAS_SHA256 != 0 {
        if !e.wants_hash() {
            return Err("digest on an entry that records none".into());
        }
        let mut d = [0u8; 32];
        d.copy_from_slice(c.take(32)?);
        e.sha256 = Some(d);
    }
    if attrs.has(Attr::Xattrs) {
        let n = c.uvarint()?;
        for _ in 0..n {
            let k = c.bytes()?.to_vec();
            let v = c.bytes()?.to_vec();
            e.xattrs.push((k, v));
        }
    }
    if !c.is_done() {
        return Err("trailing bytes in entry record".into());
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attrs::builtin_group;

    pub fn sample(path: &str, ftype: FileType) -> Entry {
        let mut e = Entry::new(
            path.as_bytes().to_vec(),
            ftype,
            builtin_group("content").expect("g"),
        );
        e.perm = 0o4755;
        e.uid = 1000;
        e.gid = 65534;
        e.size = 1 << 40;
        e.mtime = Timestamp {
            sec: -5,
            nsec: 999_999_999,
        };
        e.ctime = Timestamp {
            sec: 1_700_000_000,
            nsec: 1,
        };
        e.inode = u64::MAX;
        e.links = 3;
        e.rdev = 0x0801;
        e.link_target = b"../x\xff".to_vec();
        if ftype == FileType::Regular {
            e.sha256 = Some([7; 32]);
        }
        e.xattrs = vec![(b"security.capability".to_vec(), vec![1, 0, 0, 2])];
        if ftype != FileType::Symlink {
            e.link_target.clear();
        }
        if !ftype.is_device() {
            e.rdev = 0;
        }
        e
    }

    #[test]
    fn entries_round_trip() {
        let mut prev: Vec<u8> = Vec::new();
        for (p, t) in [
            ("/dev/sda", FileType::BlockDevice),
            ("/etc", FileType::Directory),
            ("/etc/passwd", FileType::Regular),
            ("/etc/passwd-", FileType::Symlink),
            ("/etc/x\u{e9}", FileType::Fifo),
        ] {
            let e = sample(p, t);
            let mut buf = Vec::new();
            encode_entry(&mut buf, &prev, &e);
            assert_eq!(decode_entry(&buf, &prev).expect("decode"), e);
            prev = e.path.clone();
        }
    }

    #[test]
    fn order_and_garbage_are_rejected() {
        let e = sample("/b", FileType::Regular);
        let mut buf = Vec::new();
        encode_entry(&mut buf, b"", &e);
        assert!(
            decode_entry(&buf, b"/c").is_err(),
            "shared prefix too long or out of order"
        );
        let mut longer = buf.clone();
        longer.push(0);
        assert!(decode_entry(&longer, b"").unwrap_err().contains("trailing"));
        for n in 0..buf.len() {
            assert!(decode_entry(&buf[..n], b"").is_err(), "truncated at {n}");
        }
    }
}
