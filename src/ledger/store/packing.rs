//! Packing many small records into one stored value.
//!
//! sled costs CPU per insert and copies a whole tree node when it rewrites
//! one, so the ledger stores records in packs: large enough to make the
//! per-insert cost small, small enough (about [`PACK_BYTES`]) that a tree
//! node of packs stays far below sled's blob threshold.

/// A pack is closed once it holds this many bytes of records...
pub(super) const PACK_BYTES: usize = 32 * 1024;
/// ...or this many records.
pub(super) const PACK_RECORDS: usize = 64;

/// Packs records: count (u32 BE), each record's end offset (u32 BE), then
/// the records back to back.
pub(super) fn pack<'a>(records: impl ExactSizeIterator<Item = &'a [u8]> + Clone) -> Vec<u8> {
    let count = records.len();
    let total: usize = records.clone().map(<[u8]>::len).sum();
    let mut out = Vec::with_capacity(4 + 4 * count + total);
    out.extend_from_slice(&(count as u32).to_be_bytes());
    let mut end = 0u32;
    for record in records.clone() {
        end += record.len() as u32;
        out.extend_from_slice(&end.to_be_bytes());
    }
    for record in records {
        out.extend_from_slice(record);
    }
    out
}

/// Splits consecutive records into packs: `(index of the first record, its
/// pack)` for each pack.
pub(super) fn packs<'a>(records: &'a [&'a [u8]]) -> impl Iterator<Item = (usize, Vec<u8>)> + 'a {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= records.len() {
            return None;
        }
        let mut end = start;
        let mut bytes = 0;
        while end < records.len() && end - start < PACK_RECORDS && bytes < PACK_BYTES {
            bytes += records[end].len();
            end += 1;
        }
        let packed = (start, pack(records[start..end].iter().copied()));
        start = end;
        Some(packed)
    })
}

/// Reads a u32 BE at `at`.
fn be_u32(bytes: &[u8], at: usize) -> Option<usize> {
    let raw: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(raw) as usize)
}

/// Number of records in a pack.
pub(super) fn record_count(pack: &[u8]) -> Option<u64> {
    be_u32(pack, 0).map(|count| count as u64)
}

/// Record `index` of a pack.
pub(super) fn unpack(pack: &[u8], index: u64) -> Option<&[u8]> {
    let count = record_count(pack)?;
    if index >= count {
        return None;
    }
    let data = 4 + 4 * count as usize;
    let start = if index == 0 {
        0
    } else {
        be_u32(pack, 4 + 4 * (index as usize - 1))?
    };
    let end = be_u32(pack, 4 + 4 * index as usize)?;
    if start > end {
        return None;
    }
    pack.get(data + start..data + end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_back_from_their_packs() {
        let packed = pack([&b"ab"[..], b"", b"cde"].into_iter());
        assert_eq!(unpack(&packed, 0), Some(&b"ab"[..]));
        assert_eq!(unpack(&packed, 1), Some(&b""[..]));
        assert_eq!(unpack(&packed, 2), Some(&b"cde"[..]));
        assert_eq!(unpack(&packed, 3), None);
        assert_eq!(record_count(&packed), Some(3));
    }

    #[test]
    fn packs_are_bounded_by_records_and_bytes() {
        let small = vec![vec![7u8; 10]; 200];
        let refs: Vec<&[u8]> = small.iter().map(Vec::as_slice).collect();
        let sizes: Vec<(usize, u64)> = packs(&refs)
            .map(|(first, pack)| (first, record_count(&pack).unwrap()))
            .collect();
        assert_eq!(sizes, vec![(0, 64), (64, 64), (128, 64), (192, 8)]);

        let large = vec![vec![7u8; 20_000]; 5];
        let refs: Vec<&[u8]> = large.iter().map(Vec::as_slice).collect();
        let sizes: Vec<(usize, u64)> = packs(&refs)
            .map(|(first, pack)| (first, record_count(&pack).unwrap()))
            .collect();
        assert_eq!(sizes, vec![(0, 2), (2, 2), (4, 1)]);
        for (first, pack) in packs(&refs) {
            for i in 0..record_count(&pack).unwrap() {
                assert_eq!(unpack(&pack, i), Some(large[first + i as usize].as_slice()));
            }
        }
    }
}
