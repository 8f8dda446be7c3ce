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

/// One permission type's intervals in a red-black interval tree shaped
/// exactly as etcd's (same insertion, rotations and subtree maxima), so
/// that its searches give etcd's answers even for degenerate requests
/// (a range end at or below its key), which depend on the tree's shape.
#[derive(Debug, Clone)]
struct IntervalSet {
    /// `nodes[NIL]` is the shared leaf (black, no interval).
    nodes: Vec<Node>,
    root: usize,
}

const NIL: usize = 0;

#[derive(Debug, Clone)]
struct Node {
    ivl: Interval,
    /// The largest end in this subtree (as etcd maintains it).
    max: Vec<u8>,
    left: usize,
    right: usize,
    parent: usize,
    red: bool,
}

impl Default for IntervalSet {
    fn default() -> Self {
        let leaf = Node {
            ivl: Interval {
                begin: Vec::new(),
                end: Vec::new(),
            },
            max: Vec::new(),
            left: NIL,
            right: NIL,
            parent: NIL,
            red: false,
        };
        IntervalSet {
            nodes: vec![leaf],
            root: NIL,
        }
    }
}

impl IntervalSet {
    fn red(&self, n: usize) -> bool {
        n != NIL && self.nodes[n].red
    }

    /// Recomputes maxima from `n` upwards, stopping at the first node
    /// whose maximum did not change.
    fn update_max(&mut self, mut n: usize) {
        while n != NIL {
            let node = &self.nodes[n];
            let mut max = &node.ivl.end;
            for child in [node.left, node.right] {
                if child != NIL && affine_cmp(&self.nodes[child].max, max) == Ordering::Greater {
                    max = &self.nodes[child].max;
                }
            }
            if affine_cmp(&node.max, max) == Ordering::Equal {
                break;
            }
            let max = max.clone();
            self.nodes[n].max = max;
            n = self.nodes[n].parent;
        }
    }

    fn insert(&mut self, ivl: Interval) {
        let mut parent = NIL;
        let mut at = self.root;
        while at != NIL {
            parent = at;
            at = if affine_cmp(&ivl.begin, &self.nodes[at].ivl.begin) == Ordering::Less {
                self.nodes[at].left
            } else {
                self.nodes[at].right
            };
        }
        let z = self.nodes.len();
        let goes_left = parent != NIL
            && affine_cmp(&ivl.begin, &self.nodes[parent].ivl.begin) == Ordering::Less;
        self.nodes.push(Node {
            max: ivl.end.clone(),
            ivl,
            left: NIL,
            right: NIL,
            parent,
            red: true,
        });
        if parent == NIL {
            self.root = z;
        } else {
            if goes_left {
                self.nodes[parent].left = z;
            } else {
                self.nodes[parent].right = z;
            }
            self.update_max(parent);
        }
        self.rebalance(z);
    }

    fn rebalance(&mut self, mut z: usize) {
        while self.red(self.nodes[z].parent) {
            let p = self.nodes[z].parent;
            let g = self.nodes[p].parent;
            let parent_is_left = p == self.nodes[g].left;
            let uncle = if parent_is_left {
                self.nodes[g].right
            } else {
                self.nodes[g].left
            };
            if self.red(uncle) {
                self.nodes[uncle].red = false;
                self.nodes[p].red = false;
                self.nodes[g].red = true;
                z = g;
                continue;
            }
            let inner = if parent_is_left {
                z == self.nodes[p].right
            } else {
                z == self.nodes[p].left
            };
            if inner {
                z = p;
                if parent_is_left {
                    self.rotate_left(z);
                } else {
                    self.rotate_right(z);
                }
            }
            let p = self.nodes[z].parent;
            let g = self.nodes[p].parent;
            self.nodes[p].red = false;
            self.nodes[g].red = true;
            if parent_is_left {
                self.rotate_right(g);
            } else {
                self.rotate_left(g);
            }
        }
        let root = self.root;
        self.nodes[root].red = false;
    }

    fn rotate_left(&mut self, x: usize) {
        let y = self.nodes[x].right;
        if y == NIL {
            return;
        }
        let inner = self.nodes[y].left;
        self.nodes[x].right = inner;
        self.nodes[inner].parent = x; // the shared leaf too, as etcd's
        self.update_max(x);
        self.replace_parent(x, y);
        self.nodes[y].left = x;
        self.update_max(y);
    }

    fn rotate_right(&mut self, x: usize) {
        let y = self.nodes[x].left;
        if y == NIL {
            return;
        }
        let inner = self.nodes[y].right;
        self.nodes[x].left = inner;
        self.nodes[inner].parent = x;
        self.update_max(x);
        self.replace_parent(x, y);
        self.nodes[y].right = x;
        self.update_max(y);
    }

    /// Puts `y` where `x` hangs and makes it `x`'s parent.
    fn replace_parent(&mut self, x: usize, y: usize) {
        let parent = self.nodes[x].parent;
        self.nodes[y].parent = parent;
        if parent == NIL {
            self.root = y;
        } else {
            if x == self.nodes[parent].left {
                self.nodes[parent].left = y;
            } else {
                self.nodes[parent].right = y;
            }
            self.update_max(parent);
        }
        self.nodes[x].parent = y;
    }

    /// Calls `f` on the nodes overlapping `ivl`, in begin order, as far as
    /// etcd's pruned search reaches; stops when `f` says so.
    fn visit(&self, n: usize, ivl: &Interval, f: &mut dyn FnMut(&Interval) -> bool) -> bool {
        if n == NIL {
            return true;
        }
        let node = &self.nodes[n];
        match ivl.compare(&node.ivl) {
            Ordering::Less => self.visit(node.left, ivl, f),
            Ordering::Greater => {
                let reach = Interval {
                    begin: node.ivl.begin.clone(),
                    end: node.max.clone(),
                };
                if reach.compare(ivl) != Ordering::Equal {
                    return true;
                }
                self.visit(node.left, ivl, f) && self.visit(node.right, ivl, f)
            }
            Ordering::Equal => {
                self.visit(node.left, ivl, f) && f(&node.ivl) && self.visit(node.right, ivl, f)
            }
        }
    }

    fn intersects(&self, ivl: &Interval) -> bool {
        let mut n = self.root;
        while n != NIL && ivl.compare(&self.nodes[n].ivl) != Ordering::Equal {
            let left = self.nodes[n].left;
            n = if left != NIL && affine_cmp(&self.nodes[left].max, &ivl.begin) == Ordering::Greater
            {
                left
            } else {
                self.nodes[n].right
            };
        }
        n != NIL
    }

    /// Whether the intervals overlapping `ivl` cover it without a gap.
    fn contains(&self, ivl: &Interval) -> bool {
        let mut bounds: Option<(Vec<u8>, Vec<u8>)> = None; // (min begin, max end)
        let mut contiguous = true;
        self.visit(self.root, ivl, &mut |i| match &mut bounds {
            None => {
                bounds = Some((i.begin.clone(), i.end.clone()));
                true
            }
            Some((_, max_end)) => {
                if affine_cmp(max_end, &i.begin) == Ordering::Less {
                    contiguous = false;
                    return false;
                }
                if affine_cmp(&i.end, max_end) == Ordering::Greater {
                    *max_end = i.end.clone();
                }
                true
            }
        });
        match bounds {
            Some((min_begin, max_end)) => {
                contiguous
                    && affine_cmp(&max_end, &ivl.end) != Ordering::Less
                    && affine_cmp(&min_begin, &ivl.begin) != Ordering::Greater
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

    /// Black height of `n`'s subtree; panics on a red node with a red
    /// child or unequal black heights.
    fn black_height(t: &IntervalSet, n: usize) -> usize {
        if n == NIL {
            return 1;
        }
        let node = &t.nodes[n];
        if node.red {
            assert!(!t.red(node.left) && !t.red(node.right), "red-red at {n}");
        }
        let (l, r) = (black_height(t, node.left), black_height(t, node.right));
        assert_eq!(l, r, "black heights differ at {n}");
        l + usize::from(!node.red)
    }

    fn in_order(t: &IntervalSet, n: usize, out: &mut Vec<Vec<u8>>) {
        if n != NIL {
            in_order(t, t.nodes[n].left, out);
            out.push(t.nodes[n].ivl.begin.clone());
            in_order(t, t.nodes[n].right, out);
        }
    }

    #[test]
    fn the_tree_stays_balanced_and_answers_well_formed_ranges_exactly() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let key = |k: u64| vec![b'a' + k as u8];
        let mut tree = IntervalSet::default();
        let mut flat: Vec<Interval> = Vec::new();
        for _ in 0..200 {
            let (a, b) = (next(20), next(20));
            let ivl = if a == b {
                Interval::point(&key(a))
            } else {
                Interval::range(&key(a.min(b)), &key(a.max(b)))
            };
            tree.insert(ivl.clone());
            flat.push(ivl);
            assert!(!tree.red(tree.root));
            black_height(&tree, tree.root);
            let mut begins = Vec::new();
            in_order(&tree, tree.root, &mut begins);
            assert!(begins.windows(2).all(|w| w[0] <= w[1]));
            // a well-formed query: covered iff the overlapping intervals,
            // sorted by begin, leave no gap
            let (qa, qb) = (next(20), next(20));
            if qa == qb {
                continue;
            }
            let q = Interval::range(&key(qa.min(qb)), &key(qa.max(qb)));
            let mut over: Vec<&Interval> = flat
                .iter()
                .filter(|i| q.compare(i) == Ordering::Equal)
                .collect();
            over.sort_by(|x, y| x.begin.cmp(&y.begin));
            let mut covered_to = q.begin.clone();
            for i in &over {
                if i.begin <= covered_to && i.end > covered_to {
                    covered_to = i.end.clone();
                }
            }
            assert_eq!(tree.contains(&q), covered_to >= q.end, "{q:?} in {flat:?}");
        }
    }
}
