//! Tile addresses (the spec's examples) and tile bytes against the tree.

use super::*;
use crate::ledger::memstore::MemStore;

#[test]
fn paths_follow_the_spec_examples() {
    let tile = TileRef::full(TileKind::Hashes { level: 0 }, 1_234_067);
    assert_eq!(tile.path(), "tile/0/x001/x234/067");
    assert_eq!(TileRef::parse("0/x001/x234/067"), Some(tile));
    let partial = TileRef::with_width(TileKind::Entries, 5, 112).unwrap();
    assert_eq!(partial.path(), "tile/entries/005.p/112");
    assert_eq!(TileRef::parse("entries/005.p/112"), Some(partial));
    let top = TileRef::parse("2/000.p/1").unwrap();
    assert_eq!(top.kind, TileKind::Hashes { level: 2 });
    assert_eq!(top.leaves_needed(), Some(65_536));
    // A tree of 70,000: 273 full level 0 tiles and a partial one of 112.
    assert_eq!(
        TileRef::parse("0/273.p/112").unwrap().leaves_needed(),
        Some(70_000)
    );
    assert_eq!(
        TileRef::parse("1/001.p/17").unwrap().leaves_needed(),
        Some(69_888)
    );
}

#[test]
fn non_canonical_or_out_of_range_paths_are_refused() {
    for bad in [
        "0/1",
        "0/0001",
        "0/x000/001",
        "0/001/002",
        "0/x001",
        "00/000",
        "64/000",
        "0/000.p/0",
        "0/000.p/256",
        "0/000.p/01",
        "0/000.p/",
        "entries",
        "entries/",
        "entries/x001/x002/x003/x004/x005/x006/x007/000",
        "0/x999/x999/x999/x999/x999/x999/999",
        "hashes/000",
        "0/+01",
    ] {
        assert_eq!(TileRef::parse(bad), None, "{bad}");
    }
    // Valid syntax, but no tree can be that large.
    let far = TileRef::parse("7/x018/x446/x744/x073/x709/x551/615").unwrap();
    assert_eq!(far.leaves_needed(), None);
    assert_eq!(TileRef::parse("63/000").unwrap().leaves_needed(), None);
}

#[test]
fn tiles_hold_the_tree_nodes_and_bundles_the_leaf_inputs() {
    use crate::ledger::store::CommitBatch;
    use crate::ledger::tree::{Frontier, leaf_hash};
    let store = MemStore::new();
    let mut frontier = Frontier::new();
    let mut batch = CommitBatch::default();
    for seq in 0..300u64 {
        let entry = format!("{{\"seq\":{seq}}}").into_bytes();
        batch.nodes.extend(frontier.push(leaf_hash(&entry)));
        batch.entries.push((seq, entry));
    }
    batch.checkpoint = (300, "note".to_owned());
    store.commit(&batch).unwrap();

    let level0 = read(&store, TileRef::full(TileKind::Hashes { level: 0 }, 0)).unwrap();
    assert_eq!(level0.len(), 8192);
    assert_eq!(&level0[32..64], &leaf_hash(b"{\"seq\":1}"));
    let level1 = read(
        &store,
        TileRef::with_width(TileKind::Hashes { level: 1 }, 0, 1).unwrap(),
    )
    .unwrap();
    assert_eq!(level1, store.node(8, 0).unwrap().unwrap());
    let bundle = read(
        &store,
        TileRef::with_width(TileKind::Entries, 1, 44).unwrap(),
    )
    .unwrap();
    assert_eq!(&bundle[..2], &11u16.to_be_bytes());
    assert_eq!(&bundle[2..13], b"{\"seq\":256}");
}

#[test]
fn every_path_written_parses_back_to_its_tile() {
    let indexes = [0, 1, 999, 1000, 1001, 999_999, 1_000_000, 1 << 40, u64::MAX];
    for index in indexes {
        for width in [1, 2, 255, 256] {
            for kind in [
                TileKind::Entries,
                TileKind::Hashes { level: 0 },
                TileKind::Hashes { level: 63 },
            ] {
                let tile = TileRef::with_width(kind, index, width).unwrap();
                let path = tile.path();
                let below = path.strip_prefix("tile/").unwrap();
                assert_eq!(TileRef::parse(below), Some(tile), "{path}");
            }
        }
    }
    assert_eq!(TileRef::with_width(TileKind::Entries, 0, 0), None);
    assert_eq!(TileRef::with_width(TileKind::Entries, 0, 257), None);
}
