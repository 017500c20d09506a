//! RFC 6962 / RFC 9162 Merkle tree math with SHA-256, as C2SP
//! tlog-checkpoint and tlog-proof require. Pure: no I/O, no signing.
//!
//! SPEC (RFC 6962 section 2.1):
//! - `MTH({}) = SHA-256()`, `MTH({d(0)}) = SHA-256(0x00 || d(0))`;
//! - `MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))` with `k` the
//!   largest power of two smaller than `n`.
//!
//! Hashes of complete subtrees are read through [`NodeSource`]: the node at
//! `(level, index)` covers leaves `[index << level, (index + 1) << level)`.
//! Every other hash a proof needs is computed from O(log n) of them, so
//! proofs cost O(log^2 n) reads at worst, independent of the tree's size
//! otherwise.

use sha2::{Digest, Sha256};

/// A SHA-256 tree hash.
pub type Hash = [u8; 32];

/// Reads complete-subtree hashes.
pub trait NodeSource {
    /// Why a read failed.
    type Error;
    /// The hash of the complete subtree at `level` and `index`.
    /// MUST only be asked for subtrees that lie entirely inside the tree.
    fn node(&self, level: u8, index: u64) -> Result<Hash, Self::Error>;
}

/// `SHA-256()`: the root of the empty tree.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(data);
    hasher.finalize().into()
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x01]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The largest power of two strictly smaller than `n` (n >= 2).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// `MTH(D[start:end])` for a range the RFC recursion produces: `start` is a
/// multiple of the largest power of two not above `end - start`.
fn range_hash<S: NodeSource>(source: &S, start: u64, end: u64) -> Result<Hash, S::Error> {
    let width = end - start;
    if width.is_power_of_two() && start.is_multiple_of(width) {
        let level = width.trailing_zeros() as u8;
        return source.node(level, start >> level);
    }
    let k = split(width);
    let left = range_hash(source, start, start + k)?;
    let right = range_hash(source, start + k, end)?;
    Ok(node_hash(&left, &right))
}

/// The root of the first `size` leaves.
pub fn root<S: NodeSource>(source: &S, size: u64) -> Result<Hash, S::Error> {
    if size == 0 {
        return Ok(empty_root());
    }
    range_hash(source, 0, size)
}

/// Why a proof cannot be produced.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError<E> {
    /// The index or sizes are outside the tree.
    #[error("invalid proof request: {0}")]
    Invalid(&'static str),
    /// Reading a node failed.
    #[error("reading a tree node failed")]
    Source(E),
}

/// RFC 6962 `PATH(index, D[size])`, the leaf's sibling first.
pub fn inclusion_proof<S: NodeSource>(
    source: &S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, ProofError<S::Error>> {
    if index >= size {
        return Err(ProofError::Invalid("index must be below the tree size"));
    }
    let mut proof = Vec::new();
    let (mut start, mut end, mut m) = (0u64, size, index);
    // Walk from the root down, collecting siblings; reverse at the end so
    // the leaf's sibling comes first.
    while end - start > 1 {
        let k = split(end - start);
        if m < k {
            proof.push(range_hash(source, start + k, end).map_err(ProofError::Source)?);
            end = start + k;
        } else {
            proof.push(range_hash(source, start, start + k).map_err(ProofError::Source)?);
            start += k;
            m -= k;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// RFC 6962 `PROOF(old_size, D[new_size])`, deepest node first.
pub fn consistency_proof<S: NodeSource>(
    source: &S,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, ProofError<S::Error>> {
    if old_size == 0 || old_size > new_size {
        return Err(ProofError::Invalid("need 0 < old size <= new size"));
    }
    let mut proof = Vec::new();
    // SUBPROOF(m, D[start:end], whole) unrolled from the top; nodes are
    // pushed top-down and reversed at the end.
    let (mut start, mut end, mut m, mut whole) = (0u64, new_size, old_size, true);
    loop {
        let width = end - start;
        if m == width {
            if !whole {
                proof.push(range_hash(source, start, end).map_err(ProofError::Source)?);
            }
            break;
        }
        let k = split(width);
        if m <= k {
            proof.push(range_hash(source, start + k, end).map_err(ProofError::Source)?);
            end = start + k;
        } else {
            proof.push(range_hash(source, start, start + k).map_err(ProofError::Source)?);
            start += k;
            m -= k;
            whole = false;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// RFC 9162 section 2.1.3.2: does `proof` show `leaf` at `index` in the tree
/// of `size` leaves with `root`? Never panics on hostile input.
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> bool {
    inclusion_root(leaf, index, size, proof).is_some_and(|found| found == *root)
}

/// The root an inclusion proof leads to (RFC 9162 section 2.1.3.2 without
/// its last comparison); `None` when the proof has the wrong length for
/// `index` in a tree of `size`. Proofs that must all lead to one root can
/// be checked by comparing what this gives, before that root is known.
pub fn inclusion_root(leaf: &Hash, index: u64, size: u64, proof: &[Hash]) -> Option<Hash> {
    if index >= size {
        return None;
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return None;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    (sn == 0).then_some(r)
}

/// RFC 9162 section 2.1.4.2: is the tree of `new_size` with `new_root` an
/// append-only extension of the tree of `old_size` with `old_root`?
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    if old_size == 0 || old_size > new_size {
        return false;
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    // Step 2: if old_size is a power of two, the old root starts the path.
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (mut fn_, mut sn) = (old_size - 1, new_size - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && fr == *old_root && sr == *new_root
}

/// The right edge of a growing tree: the roots of its complete subtrees,
/// largest first. Appending a leaf yields the complete-subtree nodes it
/// finishes, so a writer can store them without reading anything back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// `(level, hash)` of each complete subtree on the right edge, largest first.
    peaks: Vec<(u8, Hash)>,
}

impl Frontier {
    /// The frontier of an empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds the frontier of a tree of `size` leaves from stored nodes.
    pub fn load<S: NodeSource>(source: &S, size: u64) -> Result<Self, S::Error> {
        let mut peaks = Vec::new();
        let mut start = 0u64;
        for level in (0..64u8).rev() {
            if size & (1 << level) != 0 {
                peaks.push((level, source.node(level, start >> level)?));
                start += 1 << level;
            }
        }
        Ok(Self { size, peaks })
    }

    /// Leaves so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The complete subtrees on the right edge, largest first (one per set
    /// bit of the size).
    pub fn peaks(&self) -> impl Iterator<Item = &Hash> {
        self.peaks.iter().map(|(_, hash)| hash)
    }

    /// Appends a leaf hash; returns every complete-subtree node this leaf
    /// finishes as `(level, index, hash)`, the leaf itself first.
    pub fn push(&mut self, leaf: Hash) -> Vec<(u8, u64, Hash)> {
        let index = self.size;
        let mut finished = vec![(0u8, index, leaf)];
        let (mut level, mut hash) = (0u8, leaf);
        // INVARIANT: peaks are strictly decreasing in level, so merging
        // equal levels from the end keeps that order.
        while let Some(&(peak_level, peak_hash)) = self.peaks.last() {
            if peak_level != level {
                break;
            }
            self.peaks.pop();
            hash = node_hash(&peak_hash, &hash);
            level += 1;
            finished.push((level, index >> level, hash));
        }
        self.peaks.push((level, hash));
        self.size += 1;
        finished
    }

    /// The current root (folding the peaks right to left).
    pub fn root(&self) -> Hash {
        let mut peaks = self.peaks.iter().rev();
        let Some(&(_, mut acc)) = peaks.next() else {
            return empty_root();
        };
        for (_, peak) in peaks {
            acc = node_hash(peak, &acc);
        }
        acc
    }
}

#[cfg(test)]
mod tests;
