//! The collector's tamper-evident log: an RFC 9162 §2.1 Merkle tree over the exact bytes of
//! each stored record, with inclusion and consistency proofs and their verification.
//!
//! Leaves are `SHA-256(0x00 ‖ bytes)` and interior nodes `SHA-256(0x01 ‖ left ‖ right)`
//! (the prefixes keep a leaf from passing for a node, RFC 9162 §2.1.1); a tree of `n`
//! leaves splits at the largest power of two below `n`. The [`Tree`] keeps every complete
//! power-of-two subtree, so appending, a root of any earlier size and each proof cost
//! O(log n) hashes rather than a pass over the log: the collector answers a receipt per
//! record. Checked against the Certificate Transparency vectors (`tests/merkle.rs`).

use alloc::vec::Vec;
use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// The hash of a leaf holding `data`: `SHA-256(0x00 ‖ data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    Sha256::new().chain_update([0]).chain_update(data).finalize().into()
}

/// The hash of an interior node: `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Sha256::new()
        .chain_update([1])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// The root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two strictly below `n` (`n ≥ 2`): where RFC 9162 splits a tree.
fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// An append-only Merkle tree of leaf hashes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    /// `levels[k][i]` is the hash of the complete subtree of leaves `i·2^k .. (i+1)·2^k`.
    levels: Vec<Vec<Hash>>,
}

impl Tree {
    pub fn new() -> Tree {
        Tree::default()
    }

    /// Number of leaves.
    pub fn len(&self) -> u64 {
        self.levels.first().map_or(0, |leaves| leaves.len() as u64)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The leaf hash at `index`.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        self.levels.first()?.get(usize::try_from(index).ok()?).copied()
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut node = leaf;
        for level in 0.. {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            let nodes = &mut self.levels[level];
            nodes.push(node);
            if !nodes.len().is_multiple_of(2) {
                break;
            }
            node = node_hash(&nodes[nodes.len() - 2], &nodes[nodes.len() - 1]);
        }
    }

    /// Removes the last leaf (undoing a [`Tree::push`] whose write failed).
    pub fn pop(&mut self) -> Option<Hash> {
        let leaf = self.levels.first_mut()?.pop()?;
        let mut removed_at = self.levels[0].len();
        for level in 1..self.levels.len() {
            // The removed node completed a pair only if it was a right child.
            if removed_at.is_multiple_of(2) {
                break;
            }
            self.levels[level].pop();
            removed_at = self.levels[level].len();
        }
        while self.levels.last().is_some_and(Vec::is_empty) {
            self.levels.pop();
        }
        Some(leaf)
    }

    /// MTH of the `size` leaves from `start`: a stored complete subtree when `size` is a
    /// power of two (RFC 9162's recursion only asks for aligned ones), else split.
    fn subtree(&self, start: u64, size: u64) -> Hash {
        if size.is_power_of_two() {
            let level = size.trailing_zeros() as usize;
            return self.levels[level][(start >> level) as usize];
        }
        let k = split(size);
        node_hash(&self.subtree(start, k), &self.subtree(start + k, size - k))
    }

    /// The root of the tree's first `size` leaves (RFC 9162 §2.1.1 MTH).
    pub fn root(&self, size: u64) -> Option<Hash> {
        match size {
            0 => Some(empty_root()),
            _ if size > self.len() => None,
            _ => Some(self.subtree(0, size)),
        }
    }

    /// The inclusion proof of leaf `index` in the tree of the first `size` leaves
    /// (RFC 9162 §2.1.3.1 PATH), leaf side first.
    pub fn inclusion(&self, index: u64, size: u64) -> Option<Vec<Hash>> {
        if index >= size || size > self.len() {
            return None;
        }
        let mut proof = Vec::new();
        self.path(index, 0, size, &mut proof);
        Some(proof)
    }

    fn path(&self, index: u64, start: u64, size: u64, proof: &mut Vec<Hash>) {
        if size <= 1 {
            return;
        }
        let k = split(size);
        if index < k {
            self.path(index, start, k, proof);
            proof.push(self.subtree(start + k, size - k));
        } else {
            self.path(index - k, start + k, size - k, proof);
            proof.push(self.subtree(start, k));
        }
    }

    /// The proof that the tree of the first `old` leaves is a prefix of the tree of the
    /// first `size` (RFC 9162 §2.1.4.1 PROOF). Empty when `old` is 0 or `size`.
    pub fn consistency(&self, old: u64, size: u64) -> Option<Vec<Hash>> {
        if old > size || size > self.len() {
            return None;
        }
        let mut proof = Vec::new();
        if old > 0 && old < size {
            self.subproof(old, 0, size, true, &mut proof);
        }
        Some(proof)
    }

    fn subproof(&self, m: u64, start: u64, size: u64, whole: bool, proof: &mut Vec<Hash>) {
        if m == size {
            if !whole {
                proof.push(self.subtree(start, size));
            }
            return;
        }
        let k = split(size);
        if m <= k {
            self.subproof(m, start, k, whole, proof);
            proof.push(self.subtree(start + k, size - k));
        } else {
            self.subproof(m - k, start + k, size - k, false, proof);
            proof.push(self.subtree(start, k));
        }
    }
}

/// Whether `proof` shows the leaf `leaf` at `index` in a tree of `size` leaves with `root`
/// (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && r == *root
}

/// Whether `proof` shows that the tree of `old` leaves with `old_root` is a prefix of the
/// tree of `size` leaves with `root` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(old: u64, size: u64, old_root: &Hash, root: &Hash, proof: &[Hash]) -> bool {
    if old > size {
        return false;
    }
    if old == size {
        return proof.is_empty() && old_root == root;
    }
    if old == 0 {
        // Every tree extends the empty one; there is nothing to prove.
        return proof.is_empty() && *old_root == empty_root();
    }
    let mut path: Vec<&Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(old_root);
    }
    path.extend(proof);
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (mut f, mut s) = (old - 1, size - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (**first, **first);
    for c in rest {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    fr == *old_root && sr == *root && s == 0
}
