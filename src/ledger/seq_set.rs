//! A set of seqs kept as bits, in blocks of 4 096 seqs each allocated when
//! a seq of its own is added. After payload retention has run over a
//! bundle's range, its erasures and absent payloads name nearly every
//! decision in it: a tree set costs about ten bytes for each such seq, a
//! bit set an eighth of a byte, so what the exporter and the verifiers
//! carry stays small whatever the range's length.

use std::collections::BTreeMap;

/// Seqs per block.
const BLOCK_BITS: u64 = 4096;
const WORDS: usize = (BLOCK_BITS / 64) as usize;

/// A set of `u64` seqs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeqSet {
    /// Block number (`seq / BLOCK_BITS`) to its bits; a block with no bit
    /// set is never kept.
    blocks: BTreeMap<u64, Box<[u64; WORDS]>>,
    len: u64,
}

fn place(seq: u64) -> (u64, usize, u64) {
    let bit = seq % BLOCK_BITS;
    (seq / BLOCK_BITS, (bit / 64) as usize, 1 << (bit % 64))
}

impl SeqSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `seq`; `true` when it was not there.
    pub fn insert(&mut self, seq: u64) -> bool {
        let (block, word, mask) = place(seq);
        let words = self
            .blocks
            .entry(block)
            .or_insert_with(|| Box::new([0; WORDS]));
        let added = words[word] & mask == 0;
        words[word] |= mask;
        self.len += u64::from(added);
        added
    }

    /// Takes `seq` out; `true` when it was there.
    pub fn remove(&mut self, seq: u64) -> bool {
        let (block, word, mask) = place(seq);
        let Some(words) = self.blocks.get_mut(&block) else {
            return false;
        };
        if words[word] & mask == 0 {
            return false;
        }
        words[word] &= !mask;
        self.len -= 1;
        if words.iter().all(|w| *w == 0) {
            self.blocks.remove(&block);
        }
        true
    }

    /// Whether `seq` is in the set.
    pub fn contains(&self, seq: u64) -> bool {
        let (block, word, mask) = place(seq);
        self.blocks
            .get(&block)
            .is_some_and(|words| words[word] & mask != 0)
    }

    /// How many seqs the set holds.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the set holds no seq.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The smallest seq.
    pub fn first(&self) -> Option<u64> {
        self.iter().next()
    }

    /// Every seq of `other` added.
    pub fn extend_from(&mut self, other: &SeqSet) {
        for (block, theirs) in &other.blocks {
            let ours = self
                .blocks
                .entry(*block)
                .or_insert_with(|| Box::new([0; WORDS]));
            for (mine, their) in ours.iter_mut().zip(theirs.iter()) {
                self.len += u64::from((their & !*mine).count_ones());
                *mine |= their;
            }
        }
    }

    /// The smallest seq of the set that `other` does not hold.
    pub fn first_not_in(&self, other: &SeqSet) -> Option<u64> {
        for (block, ours) in &self.blocks {
            let theirs = other.blocks.get(block);
            for (i, word) in ours.iter().enumerate() {
                let left = word & !theirs.map_or(0, |theirs| theirs[i]);
                if left != 0 {
                    return Some(
                        block * BLOCK_BITS + i as u64 * 64 + u64::from(left.trailing_zeros()),
                    );
                }
            }
        }
        None
    }

    /// The seqs in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.blocks.iter().flat_map(|(block, words)| {
            words.iter().enumerate().flat_map(move |(i, word)| {
                let base = block * BLOCK_BITS + i as u64 * 64;
                Bits(*word).map(move |bit| base + bit)
            })
        })
    }
}

impl FromIterator<u64> for SeqSet {
    fn from_iter<I: IntoIterator<Item = u64>>(seqs: I) -> Self {
        let mut set = SeqSet::new();
        for seq in seqs {
            set.insert(seq);
        }
        set
    }
}

/// The set bits of a word, lowest first.
struct Bits(u64);

impl Iterator for Bits {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        if self.0 == 0 {
            return None;
        }
        let bit = self.0.trailing_zeros();
        self.0 &= self.0 - 1;
        Some(u64::from(bit))
    }
}

#[cfg(test)]
mod tests {
    use super::SeqSet;
    use std::collections::BTreeSet;

    /// Seqs spread over several blocks, at their edges and inside.
    fn sample() -> Vec<u64> {
        vec![0, 1, 63, 64, 4095, 4096, 4097, 9_000, 1 << 40, u64::MAX]
    }

    #[test]
    fn holds_what_a_tree_set_holds() {
        let mut ours = SeqSet::new();
        let mut tree = BTreeSet::new();
        for seq in sample().into_iter().chain([64, 9_000]) {
            assert_eq!(ours.insert(seq), tree.insert(seq), "insert {seq}");
        }
        assert_eq!(ours.len(), tree.len() as u64);
        assert_eq!(
            ours.iter().collect::<Vec<_>>(),
            tree.iter().copied().collect::<Vec<_>>()
        );
        for seq in [4096, 5, u64::MAX, 4096] {
            assert_eq!(ours.remove(seq), tree.remove(&seq), "remove {seq}");
            assert_eq!(ours.contains(seq), tree.contains(&seq));
        }
        assert_eq!(ours.first(), tree.first().copied());
        assert_eq!(ours.len(), tree.len() as u64);
        assert_eq!(
            ours.iter().collect::<Vec<_>>(),
            tree.into_iter().collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_block_emptied_is_let_go() {
        let mut set: SeqSet = [5_000, 5_001].into_iter().collect();
        set.remove(5_000);
        set.remove(5_001);
        assert!(set.is_empty());
        assert_eq!(set, SeqSet::new());
        assert_eq!(set.first(), None);
    }

    #[test]
    fn union_and_difference() {
        let a: SeqSet = [1, 64, 4096, 70_000].into_iter().collect();
        let b: SeqSet = [1, 4096, 8_192].into_iter().collect();
        assert_eq!(a.first_not_in(&b), Some(64));
        assert_eq!(b.first_not_in(&a), Some(8_192));
        let mut joined = b.clone();
        joined.extend_from(&a);
        assert_eq!(joined.len(), 5);
        assert_eq!(a.first_not_in(&joined), None);
        assert_eq!(
            joined.iter().collect::<Vec<_>>(),
            vec![1, 64, 4096, 8_192, 70_000]
        );
    }
}
