//! Attributes a rule can record, and attribute-set expressions such as
//! `content-inode` or `perm+uid+gid+sha256`.

use std::fmt;

/// One recorded attribute. The discriminant is the bit in an [`AttrSet`] and
/// is part of the baseline format: never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Attr {
    /// Permission bits including setuid/setgid/sticky.
    Perm = 0,
    Uid = 1,
    Gid = 2,
    Size = 3,
    Mtime = 4,
    /// Inode change time: a user can reset mtime with `touch -d`, not ctime.
    Ctime = 5,
    Inode = 6,
    Links = 7,
    /// Target of a symbolic link.
    LinkTarget = 8,
    Sha256 = 9,
    /// All extended attributes: `security.selinux`, `security.capability`,
    /// POSIX ACLs (`system.posix_acl_*`), `trusted.*`, `user.*`.
    Xattrs = 10,
    /// Device numbers of block and character devices.
    Device = 11,
    /// Size may grow and content may be appended; the old content must stay
    /// an unchanged prefix (log files kept in scope).
    Growing = 12,
}

/// All attributes with their config/report names, in bit order.
pub const ALL: [(Attr, &str); 13] = [
    (Attr::Perm, "perm"),
    (Attr::Uid, "uid"),
    (Attr::Gid, "gid"),
    (Attr::Size, "size"),
    (Attr::Mtime, "mtime"),
    (Attr::Ctime, "ctime"),
    (Attr::Inode, "inode"),
    (Attr::Links, "links"),
    (Attr::LinkTarget, "link_target"),
    (Attr::Sha256, "sha256"),
    (Attr::Xattrs, "xattrs"),
    (Attr::Device, "device"),
    (Attr::Growing, "growing"),
];

impl Attr {
    pub fn name(self) -> &'static str {
        ALL.get(self as usize).map_or("?", |(_, n)| *n)
    }
}

/// A set of attributes (bit set over [`Attr`]). The file type is always
/// recorded and compared, so it is not a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct AttrSet(u32);

impl AttrSet {
    pub const EMPTY: AttrSet = AttrSet(0);
    const VALID: u32 = (1 << ALL.len()) - 1;

    pub fn from_bits(bits: u32) -> Option<AttrSet> {
        (bits & !Self::VALID == 0).then_some(AttrSet(bits))
    }
    pub fn bits(self) -> u32 {
        self.0
    }
    pub fn with(self, a: Attr) -> AttrSet {
        AttrSet(self.0 | 1 << a as u32)
    }
    pub fn without(self, a: Attr) -> AttrSet {
        AttrSet(self.0 & !(1 << a as u32))
    }
    pub fn has(self, a: Attr) -> bool {
        self.0 & (1 << a as u32) != 0
    }
    pub fn union(self, o: AttrSet) -> AttrSet {
        AttrSet(self.0 | o.0)
    }
    pub fn minus(self, o: AttrSet) -> AttrSet {
        AttrSet(self.0 & !o.0)
    }
    pub fn of(attrs: &[Attr]) -> AttrSet {
        attrs.iter().fold(AttrSet::EMPTY, |s, a| s.with(*a))
    }
    pub fn iter(self) -> impl Iterator<Item = Attr> {
        ALL.iter().map(|(a, _)| *a).filter(move |a| self.has(*a))
    }
}

impl fmt::Display for AttrSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Attr::name).collect();
        f.write_str(&names.join("+"))
    }
}

/// Built-in attribute groups (AIDE's `R`, `L`, `>` in spirit).
pub fn builtin_group(name: &str) -> Option<AttrSet> {
    use Attr::*;
    let perms = AttrSet::of(&[Perm, Uid, Gid, LinkTarget, Xattrs, Device]);
    Some(match name {
        // Everything that identifies a file's content and metadata.
        "content" => perms.union(AttrSet::of(&[Size, Mtime, Ctime, Inode, Links, Sha256])),
        // Ownership and mode only: for files whose content legitimately changes.
        "perms" => perms,
        // Append-only logs kept in scope.
        "log" => perms.union(AttrSet::of(&[Size, Inode, Sha256, Growing])),
        // Existence and type only.
        "exists" => AttrSet::EMPTY,
        _ => return None,
    })
}

/// Resolves an attribute name or a built-in group.
fn term(name: &str, user: &dyn Fn(&str) -> Option<AttrSet>) -> Option<AttrSet> {
    if let Some((a, _)) = ALL.iter().find(|(_, n)| *n == name) {
        return Some(AttrSet::EMPTY.with(*a));
    }
    // Friendly aliases: these are all stored as extended attributes.
    if matches!(name, "acl" | "selinux" | "caps") {
        return Some(AttrSet::EMPTY.with(Attr::Xattrs));
    }
    user(name).or_else(|| builtin_group(name))
}

/// Parses `a+b-c` (terms are attribute names or group names).
pub fn parse_expr(expr: &str, user: &dyn Fn(&str) -> Option<AttrSet>) -> Result<AttrSet, String> {
    let expr = expr.trim();
    if expr.is_empty() {
        return Err("empty attribute expression".into());
    }
    let mut set = AttrSet::EMPTY;
    let mut sign = '+';
    let mut rest = expr;
    loop {
        let (name, next) = match rest.find(['+', '-']) {
            Some(i) => (rest.get(..i).unwrap_or_default(), rest.get(i..)),
            None => (rest, None),
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(format!("empty term in attribute expression {expr:?}"));
        }
        let t = term(name, user).ok_or_else(|| {
            format!(
                "unknown attribute or group {name:?} in {expr:?} (attributes: {}; groups: content, perms, log, exists)",
                ALL.iter().map(|(_, n)| *n).collect::<Vec<_>>().join(", ")
            )
        })?;
        set = if sign == '+' {
            set.union(t)
        } else {
            set.minus(t)
        };
        let Some(next) = next else { break };
        let mut chars = next.chars();
        sign = chars.next().unwrap_or('+');
        rest = chars.as_str();
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<AttrSet> {
        None
    }

    #[test]
    fn parses_groups_and_terms() {
        let s = parse_expr("content-inode-links", &none).expect("parse");
        assert!(s.has(Attr::Sha256) && s.has(Attr::Ctime));
        assert!(!s.has(Attr::Inode) && !s.has(Attr::Links));
        let s = parse_expr("perm+uid + selinux", &none).expect("parse");
        assert_eq!(s, AttrSet::of(&[Attr::Perm, Attr::Uid, Attr::Xattrs]));
        assert_eq!(s.to_string(), "perm+uid+xattrs");
    }

    #[test]
    fn rejects_unknown_and_empty_terms() {
        assert!(parse_expr("perm+bogus", &none)
            .unwrap_err()
            .contains("bogus"));
        assert!(parse_expr("perm++uid", &none).is_err());
        assert!(parse_expr("", &none).is_err());
    }

    #[test]
    fn bits_round_trip_and_reject_unknown() {
        let s = builtin_group("log").expect("group");
        assert_eq!(AttrSet::from_bits(s.bits()), Some(s));
        assert_eq!(AttrSet::from_bits(1 << 20), None);
    }
}
