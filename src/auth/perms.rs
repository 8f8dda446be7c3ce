//! Which key ranges a user may read or write: the union of its roles'
//! permissions, checked as etcd's range_perm_cache does (an interval set
//! over "affine" byte strings, where the empty string is +infinity).
//!
//! The same edge cases as etcd follow from the same comparisons: a range
//! end of "\0" means "to the end of the key space", a permission on a
//! single key covers exactly that key, and a range request is allowed only
//! if the permitted intervals cover all of it without a gap.

use std::cmp::Ordering;

use crate::proto::authpb::{permission::Type as PermType, Role};

/// A byte string where the empty one sorts after every other (etcd's
/// `BytesAffineComparable`).
fn affine_cmp(a: &[u8], b: &[u8]) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.cmp(b),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Interval {
    begin: Vec<u8>,
    end: Vec<u8>,
}

impl Interval {
    /// `[key, end)`; an end of "\0" is open (+infinity).
    fn range(key: &[u8], end: &[u8]) -> Interval {
        let end = if end == [0] { Vec::new() } else { end.to_vec() };
        Interval {
            begin: key.to_vec(),
            end,
        }
    }

    /// Just `key`: `[key, key + "\0")`.
    fn point(key: &[u8]) -> Interval {
        let mut end = key.to_vec();
        end.push(0);
        Interval {
            begin: key.to_vec(),
            end,
        }
    }

    /// etcd's `Interval.Compare`: `Equal` when the two overlap.
    fn compare(&self, other: &Interval) -> Ordering {
        let begin_begin = affine_cmp(&self.begin, &other.begin);
        let begin_end = affine_cmp(&self.begin, &other.end);
        let end_begin = affine_cmp(&self.end, &other.begin);
        if begin_begin == Ordering::Less && end_begin != Ordering::Greater {
            return Ordering::Less;
        }
        if begin_end != Ordering::Less {
            return Ordering::Greater;
        }
        Ordering::Equal
    }
}

/// One permission type's intervals, sorted by begin.
#[derive(Debug, Clone, Default)]
struct IntervalSet(Vec<Interval>);

impl IntervalSet {
    fn insert(&mut self, ivl: Interval) {
        // after equal begins, as etcd's tree inserts ties to the right
        let at = self
            .0
            .partition_point(|i| affine_cmp(&i.begin, &ivl.begin) != Ordering::Greater);
        self.0.insert(at, ivl);
    }

    fn intersects(&self, ivl: &Interval) -> bool {
        self.0.iter().any(|i| ivl.compare(i) == Ordering::Equal)
    }

    /// Whether the intervals overlapping `ivl` cover it without a gap.
    fn contains(&self, ivl: &Interval) -> bool {
        let mut bounds: Option<(&[u8], &[u8])> = None; // (min begin, max end)
        for i in self.0.iter().filter(|i| ivl.compare(i) == Ordering::Equal) {
            match bounds {
                None => bounds = Some((&i.begin, &i.end)),
                Some((min_begin, max_end)) => {
                    if affine_cmp(max_end, &i.begin) == Ordering::Less {
                        return false;
                    }
                    let max_end = if affine_cmp(&i.end, max_end) == Ordering::Greater {
                        &i.end
                    } else {
                        max_end
                    };
                    bounds = Some((min_begin, max_end));
                }
            }
        }
        match bounds {
            Some((min_begin, max_end)) => {
                affine_cmp(max_end, &ivl.end) != Ordering::Less
                    && affine_cmp(min_begin, &ivl.begin) != Ordering::Greater
            }
            None => false,
        }
    }
}

/// What a user may read and write, merged over its roles.
#[derive(Debug, Clone, Default)]
pub struct UserPerms {
    read: IntervalSet,
    write: IntervalSet,
}

/// Read or write: what an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

impl UserPerms {
    /// etcd's getMergedPerms: roles that no longer exist are skipped.
    pub fn merge<'a>(roles: impl Iterator<Item = &'a Role>) -> UserPerms {
        let mut perms = UserPerms::default();
        for role in roles {
            for p in &role.key_permission {
                let ivl = if p.range_end.is_empty() {
                    Interval::point(&p.key)
                } else {
                    Interval::range(&p.key, &p.range_end)
                };
                match PermType::try_from(p.perm_type) {
                    Ok(PermType::Readwrite) => {
                        perms.read.insert(ivl.clone());
                        perms.write.insert(ivl);
                    }
                    Ok(PermType::Read) => perms.read.insert(ivl),
                    Ok(PermType::Write) => perms.write.insert(ivl),
                    Err(_) => {}
                }
            }
        }
        perms
    }

    /// Whether `access` is allowed on `key` (an empty `range_end`) or on
    /// `[key, range_end)`.
    pub fn allows(&self, access: Access, key: &[u8], range_end: &[u8]) -> bool {
        let set = match access {
            Access::Read => &self.read,
            Access::Write => &self.write,
        };
        if range_end.is_empty() {
            set.intersects(&Interval::point(key))
        } else {
            set.contains(&Interval::range(key, range_end))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::authpb::Permission;

    fn role(perms: &[(PermType, &str, &str)]) -> Role {
        Role {
            name: b"r".to_vec(),
            key_permission: perms
                .iter()
                .map(|(t, k, e)| Permission {
                    perm_type: *t as i32,
                    key: k.as_bytes().to_vec(),
                    range_end: e.as_bytes().to_vec(),
                })
                .collect(),
        }
    }

    #[test]
    fn single_key_prefix_and_from_key() {
        let r = role(&[
            (PermType::Read, "foo", ""),
            (PermType::Readwrite, "dir/", "dir0"),
            (PermType::Write, "z", "\0"),
        ]);
        let p = UserPerms::merge([&r].into_iter());
        assert!(p.allows(Access::Read, b"foo", b""));
        assert!(!p.allows(Access::Write, b"foo", b""));
        assert!(!p.allows(Access::Read, b"foo1", b""));
        assert!(p.allows(Access::Read, b"dir/a", b""));
        assert!(p.allows(Access::Write, b"dir/", b"dir0"));
        assert!(p.allows(Access::Read, b"dir/a", b"dir/b"));
        assert!(!p.allows(Access::Read, b"dir/", b"dir1"));
        assert!(p.allows(Access::Write, b"zzz", b""));
        assert!(p.allows(Access::Write, b"z", b"\0"));
        assert!(!p.allows(Access::Write, b"y", b"\0"));
        assert!(!p.allows(Access::Read, b"z", b""));
    }

    #[test]
    fn adjacent_ranges_cover_together_but_not_across_a_gap() {
        let r = role(&[
            (PermType::Read, "a", "c"),
            (PermType::Read, "c", "e"),
            (PermType::Read, "f", "h"),
        ]);
        let p = UserPerms::merge([&r].into_iter());
        assert!(p.allows(Access::Read, b"a", b"e"));
        assert!(p.allows(Access::Read, b"b", b"d"));
        assert!(!p.allows(Access::Read, b"a", b"g"));
        assert!(!p.allows(Access::Read, b"0", b"b"));
    }
}
