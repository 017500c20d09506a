//! One sealed batch as a write-ahead record, and reading records back.
//!
//! A record is `magic "GWR2" (4) || body length (u32 LE) || checksum (16)
//! || body`. The checksum is the first 16 bytes of the body's BLAKE3 hash
//! keyed with the segment's key (a random key in the segment's header,
//! `segments.rs`): the ledger already depends on BLAKE3 (its chain), it
//! hashes faster than the disk writes, and unlike a CRC it cannot be fooled
//! by a torn write that happens to leave old bytes of the same file
//! behind. The key matters because a body holds what clients sent: an
//! unkeyed checksum let a request body carry bytes that read as a valid
//! record, which the check for "a valid record after a bad one" (damage,
//! not a torn write) would then find inside a torn record. The body holds
//! every part of a [`CommitBatch`], lengths as u32 LE, numbers as u64 LE.
//! The subject index rows come last and only when the batch has any, so a
//! batch without them is written exactly as before they existed.
//!
//! Segments written before segment keys (no header) hold `"GWR1"` records
//! with the plain BLAKE3 checksum; they are still read.

use crate::ledger::store::CommitBatch;

/// Records of a keyed segment.
pub(super) const MAGIC: &[u8; 4] = b"GWR2";
/// Records of a segment without a key (written before segment keys).
pub(super) const MAGIC_UNKEYED: &[u8; 4] = b"GWR1";
/// A segment's checksum key.
pub(super) type SegmentKey = [u8; 32];
/// Magic, body length, checksum.
pub(super) const HEADER_BYTES: usize = 4 + 4 + 16;

/// A record cannot be read whole: the end of the durable file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(super) enum Torn {
    /// Fewer bytes than a header, or than the body it announces.
    #[error("a record cut short")]
    Short,
    /// The bytes are not a record, or not the record that was written.
    #[error("a record whose checksum or layout does not match")]
    Damaged,
}

fn checksum(key: Option<&SegmentKey>, body: &[u8]) -> [u8; 16] {
    let hash = match key {
        Some(key) => blake3::keyed_hash(key, body),
        None => blake3::hash(body),
    };
    let mut sum = [0; 16];
    sum.copy_from_slice(&hash.as_bytes()[..16]);
    sum
}

/// The magic of the records in a segment with (or without) a key.
pub(super) fn magic(key: Option<&SegmentKey>) -> &'static [u8; 4] {
    match key {
        Some(_) => MAGIC,
        None => MAGIC_UNKEYED,
    }
}

/// The record of `batch`, header included, for a segment keyed `key`
/// (`None`: the form of segments without a key, for tests of reading it).
pub(super) fn encode(batch: &CommitBatch, key: Option<&SegmentKey>) -> Vec<u8> {
    // The header goes in front once the body is known; written in place,
    // so the body is not copied a second time.
    let mut body = Vec::with_capacity(
        HEADER_BYTES
            + 256
            + batch
                .entries
                .iter()
                .chain(&batch.payloads)
                .map(|(_, bytes)| bytes.len() + 12)
                .sum::<usize>()
            + batch.nodes.len() * 41
            + batch.signatures.len() * 64,
    );
    body.resize(HEADER_BYTES, 0);
    let first = batch.entries.first().map_or(0, |(seq, _)| *seq);
    put_u64(&mut body, first);
    put_len(&mut body, batch.entries.len());
    for (_, entry) in &batch.entries {
        put_bytes(&mut body, entry);
    }
    put_len(&mut body, batch.nodes.len());
    for (level, index, hash) in &batch.nodes {
        body.push(*level);
        put_u64(&mut body, *index);
        body.extend_from_slice(hash);
    }
    put_u64(&mut body, batch.checkpoint.0);
    put_bytes(&mut body, batch.checkpoint.1.as_bytes());
    put_len(&mut body, batch.decisions.len());
    for (id, seq) in &batch.decisions {
        body.extend_from_slice(id);
        put_u64(&mut body, *seq);
    }
    put_len(&mut body, batch.payloads.len());
    for (seq, payload) in &batch.payloads {
        put_u64(&mut body, *seq);
        put_bytes(&mut body, payload);
    }
    put_len(&mut body, batch.signatures.len());
    for signature in &batch.signatures {
        body.extend_from_slice(signature);
    }
    put_len(&mut body, batch.governance.len());
    for seq in &batch.governance {
        put_u64(&mut body, *seq);
    }
    if !batch.subjects.is_empty() {
        put_len(&mut body, batch.subjects.len());
        for (subject, seq) in &batch.subjects {
            body.extend_from_slice(subject);
            put_u64(&mut body, *seq);
        }
    }
    let mut record = body;
    let sum = checksum(key, &record[HEADER_BYTES..]);
    let len = ((record.len() - HEADER_BYTES) as u32).to_le_bytes();
    record[..4].copy_from_slice(magic(key));
    record[4..8].copy_from_slice(&len);
    record[8..HEADER_BYTES].copy_from_slice(&sum);
    record
}

fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    // A batch's captures stop growing it at 256 MiB, and one decision's
    // are at most 2 x 64 MiB (`limits.capture_bytes`): far below 4 GiB.
    out.extend_from_slice(&(len as u32).to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_len(out, bytes.len());
    out.extend_from_slice(bytes);
}

/// The record at the start of `bytes` in a segment keyed `key`: the batch
/// and the record's length.
pub(super) fn decode(bytes: &[u8], key: Option<&SegmentKey>) -> Result<(CommitBatch, usize), Torn> {
    let header = bytes.get(..HEADER_BYTES).ok_or(Torn::Short)?;
    if &header[..4] != magic(key) {
        return Err(Torn::Damaged);
    }
    let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
    let body = bytes
        .get(HEADER_BYTES..HEADER_BYTES + len)
        .ok_or(Torn::Short)?;
    if checksum(key, body) != header[8..HEADER_BYTES] {
        return Err(Torn::Damaged);
    }
    let batch = Reader(body).batch().ok_or(Torn::Damaged)?;
    Ok((batch, HEADER_BYTES + len))
}

/// Reads a body front to back; `None` where it ends early.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    fn len(&mut self) -> Option<usize> {
        self.array().map(|b| u32::from_le_bytes(b) as usize)
    }

    fn bytes(&mut self) -> Option<Vec<u8>> {
        let len = self.len()?;
        self.take(len).map(<[u8]>::to_vec)
    }

    /// `count` items, with no more room reserved than the body could hold.
    fn many<T>(&mut self, f: impl Fn(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        let count = self.len()?;
        let mut items = Vec::with_capacity(count.min(self.0.len()));
        for _ in 0..count {
            items.push(f(self)?);
        }
        Some(items)
    }

    fn batch(mut self) -> Option<CommitBatch> {
        let first = self.u64()?;
        let entries = self.many(Self::bytes)?;
        let entries = entries
            .into_iter()
            .enumerate()
            .map(|(i, bytes)| (first + i as u64, bytes))
            .collect();
        let nodes = self.many(|r| Some((r.array::<1>()?[0], r.u64()?, r.array()?)))?;
        let size = self.u64()?;
        let note = String::from_utf8(self.bytes()?).ok()?;
        let decisions = self.many(|r| Some((r.array()?, r.u64()?)))?;
        let payloads = self.many(|r| Some((r.u64()?, r.bytes()?)))?;
        let signatures = self.many(Self::array)?;
        let governance = self.many(Self::u64)?;
        let subjects = if self.0.is_empty() {
            Vec::new()
        } else {
            self.many(|r| Some((r.array()?, r.u64()?)))?
        };
        self.0.is_empty().then_some(CommitBatch {
            entries,
            nodes,
            checkpoint: (size, note),
            decisions,
            payloads,
            signatures,
            governance,
            subjects,
        })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::ledger::wal) fn sample(first: u64, n: u64) -> CommitBatch {
        CommitBatch {
            entries: (first..first + n)
                .map(|seq| (seq, format!("{{\"seq\":{seq}}}").into_bytes()))
                .collect(),
            nodes: vec![(0, first, [7; 32])],
            checkpoint: (first + n, format!("note {}", first + n)),
            decisions: vec![([first as u8; 16], first)],
            payloads: vec![(first, vec![1, 2, 3])],
            signatures: vec![[9; 64]; n as usize],
            governance: vec![first],
            subjects: vec![([first as u8; 32], first)],
        }
    }

    #[test]
    fn a_record_reads_back_as_the_batch_it_was_keyed_or_not() {
        let batch = sample(5, 3);
        for key in [Some(&KEY), None] {
            let record = encode(&batch, key);
            let (read, len) = decode(&record, key).unwrap();
            assert_eq!(len, record.len());
            assert_eq!(format!("{read:?}"), format!("{batch:?}"));
        }
    }

    const KEY: SegmentKey = [3; 32];

    #[test]
    fn a_batch_without_subject_rows_is_written_as_before_them() {
        let mut batch = sample(5, 3);
        let with = encode(&batch, Some(&KEY));
        batch.subjects.clear();
        let without = encode(&batch, Some(&KEY));
        // The old layout ends with the governance rows: 4 + 8 bytes here,
        // and the subject rows take 4 + 40 more.
        assert_eq!(with.len(), without.len() + 4 + 40);
        let (read, _) = decode(&without, Some(&KEY)).unwrap();
        assert!(read.subjects.is_empty());
        assert_eq!(read.governance, vec![5]);
        let (read, _) = decode(&with, Some(&KEY)).unwrap();
        assert_eq!(read.subjects, vec![([5; 32], 5)]);
    }

    #[test]
    fn every_cut_or_flipped_byte_is_a_torn_record() {
        let record = encode(&sample(0, 2), Some(&KEY));
        for cut in 0..record.len() {
            assert_eq!(
                decode(&record[..cut], Some(&KEY)).unwrap_err(),
                Torn::Short,
                "cut at {cut}"
            );
        }
        for at in 0..record.len() {
            let mut bad = record.clone();
            bad[at] ^= 1;
            assert!(decode(&bad, Some(&KEY)).is_err(), "flipped byte {at}");
        }
    }

    #[test]
    fn a_record_made_without_the_segments_key_is_not_a_record_of_it() {
        // What a client could build into a request body: a well-formed
        // record, checksummed without the key it cannot know.
        let forged = encode(&sample(0, 1), Some(&[4; 32]));
        assert_eq!(decode(&forged, Some(&KEY)).unwrap_err(), Torn::Damaged);
        let unkeyed = encode(&sample(0, 1), None);
        assert_eq!(decode(&unkeyed, Some(&KEY)).unwrap_err(), Torn::Damaged);
    }
}
