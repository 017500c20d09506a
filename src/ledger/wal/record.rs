//! One sealed batch as a write-ahead record, and reading records back.
//!
//! A record is `magic "GWR1" (4) || body length (u32 LE) || checksum (16)
//! || body`. The checksum is the first 16 bytes of the body's BLAKE3 hash:
//! the ledger already depends on BLAKE3 (its chain), it hashes faster than
//! the disk writes, and unlike a CRC it cannot be fooled by a torn write
//! that happens to leave old bytes of the same file behind. The body holds
//! every part of a [`CommitBatch`], lengths as u32 LE, numbers as u64 LE.

use crate::ledger::store::CommitBatch;

pub(super) const MAGIC: &[u8; 4] = b"GWR1";
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

fn checksum(body: &[u8]) -> [u8; 16] {
    let mut sum = [0; 16];
    sum.copy_from_slice(&blake3::hash(body).as_bytes()[..16]);
    sum
}

/// The record of `batch`, header included.
pub(super) fn encode(batch: &CommitBatch) -> Vec<u8> {
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
    let mut record = body;
    let sum = checksum(&record[HEADER_BYTES..]);
    let len = ((record.len() - HEADER_BYTES) as u32).to_le_bytes();
    record[..4].copy_from_slice(MAGIC);
    record[4..8].copy_from_slice(&len);
    record[8..HEADER_BYTES].copy_from_slice(&sum);
    record
}

fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    // Batches are bounded by `ledger.max_batch` and the body limits, far
    // below 4 GiB.
    out.extend_from_slice(&(len as u32).to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_len(out, bytes.len());
    out.extend_from_slice(bytes);
}

/// The record at the start of `bytes`: the batch and the record's length.
pub(super) fn decode(bytes: &[u8]) -> Result<(CommitBatch, usize), Torn> {
    let header = bytes.get(..HEADER_BYTES).ok_or(Torn::Short)?;
    if &header[..4] != MAGIC {
        return Err(Torn::Damaged);
    }
    let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
    let body = bytes
        .get(HEADER_BYTES..HEADER_BYTES + len)
        .ok_or(Torn::Short)?;
    if checksum(body) != header[8..HEADER_BYTES] {
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
        self.0.is_empty().then_some(CommitBatch {
            entries,
            nodes,
            checkpoint: (size, note),
            decisions,
            payloads,
            signatures,
            governance,
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
        }
    }

    #[test]
    fn a_record_reads_back_as_the_batch_it_was() {
        let batch = sample(5, 3);
        let record = encode(&batch);
        let (read, len) = decode(&record).unwrap();
        assert_eq!(len, record.len());
        assert_eq!(format!("{read:?}"), format!("{batch:?}"));
    }

    #[test]
    fn every_cut_or_flipped_byte_is_a_torn_record() {
        let record = encode(&sample(0, 2));
        for cut in 0..record.len() {
            assert_eq!(
                decode(&record[..cut]).unwrap_err(),
                Torn::Short,
                "cut at {cut}"
            );
        }
        for at in 0..record.len() {
            let mut bad = record.clone();
            bad[at] ^= 1;
            assert!(decode(&bad).is_err(), "flipped byte {at}");
        }
    }
}
