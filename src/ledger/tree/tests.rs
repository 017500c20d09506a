//! Known answers from tests/data/rfc6962_sha256_vectors.json, exhaustive
//! proof round trips up to 300 leaves, and tampering.

use super::*;
use std::collections::HashMap;
use std::convert::Infallible;

/// A tree in memory, built only through [`Frontier::push`].
#[derive(Default)]
struct MemTree {
    nodes: HashMap<(u8, u64), Hash>,
    frontier: Frontier,
}

impl MemTree {
    fn with_leaves(leaves: &[Vec<u8>]) -> Self {
        let mut tree = MemTree::default();
        for leaf in leaves {
            for (level, index, hash) in tree.frontier.push(leaf_hash(leaf)) {
                tree.nodes.insert((level, index), hash);
            }
        }
        tree
    }
}

impl NodeSource for MemTree {
    type Error = Infallible;
    fn node(&self, level: u8, index: u64) -> Result<Hash, Infallible> {
        Ok(*self
            .nodes
            .get(&(level, index))
            .unwrap_or_else(|| panic!("node ({level}, {index}) not stored")))
    }
}

fn vectors() -> serde_json::Value {
    let text = include_str!("../../../tests/data/rfc6962_sha256_vectors.json");
    serde_json::from_str(text).unwrap()
}

fn h(value: &serde_json::Value) -> Hash {
    let text = value.as_str().unwrap();
    let bytes: Vec<u8> = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect();
    bytes.try_into().unwrap()
}

fn hashes(value: &serde_json::Value) -> Vec<Hash> {
    value.as_array().unwrap().iter().map(h).collect()
}

fn bytes(value: &serde_json::Value) -> Vec<u8> {
    h_vec(value.as_str().unwrap())
}

fn h_vec(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn leaves() -> Vec<Vec<u8>> {
    vectors()["leaf_inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(bytes)
        .collect()
}

#[test]
fn roots_and_leaf_hashes_match_the_vectors() {
    let v = vectors();
    let leaves = leaves();
    assert_eq!(leaves.len(), 300);
    for (i, leaf) in leaves.iter().enumerate() {
        assert_eq!(leaf_hash(leaf), h(&v["leaf_hashes"][i]), "leaf {i}");
    }
    let tree = MemTree::with_leaves(&leaves);
    for n in 0..=300u64 {
        assert_eq!(
            root(&tree, n).unwrap(),
            h(&v["roots"][n as usize]),
            "root of {n}"
        );
    }
    // The frontier's own root agrees at every size.
    let mut frontier = Frontier::new();
    assert_eq!(frontier.root(), h(&v["roots"][0]));
    for (i, leaf) in leaves.iter().enumerate() {
        frontier.push(leaf_hash(leaf));
        assert_eq!(
            frontier.root(),
            h(&v["roots"][i + 1]),
            "frontier root of {}",
            i + 1
        );
    }
}

#[test]
fn proofs_match_the_vectors_byte_for_byte() {
    let v = vectors();
    let tree = MemTree::with_leaves(&leaves());
    for case in v["inclusion"].as_array().unwrap() {
        let (index, size) = (
            case["index"].as_u64().unwrap(),
            case["size"].as_u64().unwrap(),
        );
        let proof = inclusion_proof(&tree, index, size).unwrap();
        assert_eq!(proof, hashes(&case["path"]), "inclusion ({index}, {size})");
        assert!(verify_inclusion(
            &h(&case["leaf_hash"]),
            index,
            size,
            &proof,
            &h(&case["root"])
        ));
    }
    for case in v["consistency"].as_array().unwrap() {
        let (m, n) = (case["m"].as_u64().unwrap(), case["n"].as_u64().unwrap());
        let proof = consistency_proof(&tree, m, n).unwrap();
        assert_eq!(proof, hashes(&case["proof"]), "consistency ({m}, {n})");
        assert!(verify_consistency(
            m,
            n,
            &h(&case["root_m"]),
            &h(&case["root_n"]),
            &proof
        ));
    }
}

#[test]
fn invalid_proofs_from_the_vectors_are_rejected() {
    let v = vectors();
    for case in v["inclusion_invalid"].as_array().unwrap() {
        let ok = verify_inclusion(
            &h(&case["leaf_hash"]),
            case["index"].as_u64().unwrap(),
            case["size"].as_u64().unwrap(),
            &hashes(&case["path"]),
            &h(&case["root"]),
        );
        assert!(!ok, "accepted: {}", case["reason"]);
    }
    for case in v["consistency_invalid"].as_array().unwrap() {
        let ok = verify_consistency(
            case["m"].as_u64().unwrap(),
            case["n"].as_u64().unwrap(),
            &h(&case["root_m"]),
            &h(&case["root_n"]),
            &hashes(&case["proof"]),
        );
        assert!(!ok, "accepted: {}", case["reason"]);
    }
}

#[test]
fn ct_crosscheck_numbers_agree() {
    let v = vectors();
    let cross = &v["sha256_crosscheck"];
    let tree = MemTree::with_leaves(&leaves());
    for (n, expected) in cross["roots"].as_array().unwrap().iter().enumerate() {
        assert_eq!(root(&tree, n as u64).unwrap(), h(expected), "CT root {n}");
    }
}

/// Every (index, size) and (m, n) up to 300: proofs verify, and fail with
/// a neighbouring index or size, a wrong root, or a flipped bit.
#[test]
fn every_proof_up_to_300_verifies_and_alterations_fail() {
    let tree = MemTree::with_leaves(&leaves());
    let roots: Vec<Hash> = (0..=300).map(|n| root(&tree, n).unwrap()).collect();
    let leaf_hashes: Vec<Hash> = leaves().iter().map(|l| leaf_hash(l)).collect();
    for size in 1..=300u64 {
        for index in 0..size {
            let proof = inclusion_proof(&tree, index, size).unwrap();
            let leaf = &leaf_hashes[index as usize];
            let root_n = &roots[size as usize];
            assert!(
                verify_inclusion(leaf, index, size, &proof, root_n),
                "({index}, {size})"
            );
            // Another index or size (with that size's root) needs another proof.
            if index + 1 < size {
                assert!(
                    !verify_inclusion(leaf, index + 1, size, &proof, root_n),
                    "index+1 ({index}, {size})"
                );
            }
            if size < 300 {
                let bigger = &roots[size as usize + 1];
                assert!(
                    !verify_inclusion(leaf, index, size + 1, &proof, bigger),
                    "size+1 ({index}, {size})"
                );
            }
            if let Some(first) = proof.first() {
                let mut bad = proof.clone();
                bad[0][(index % 32) as usize] ^= 1 << (size % 8);
                assert!(
                    !verify_inclusion(leaf, index, size, &bad, root_n),
                    "flipped ({index}, {size})"
                );
                assert!(!verify_inclusion(first, index, size, &proof, root_n) || first == leaf);
            }
        }
    }
    for n in 1..=300u64 {
        for m in 1..=n {
            let proof = consistency_proof(&tree, m, n).unwrap();
            let (root_m, root_n) = (&roots[m as usize], &roots[n as usize]);
            assert!(
                verify_consistency(m, n, root_m, root_n, &proof),
                "({m}, {n})"
            );
            if m < n {
                assert!(
                    !verify_consistency(m, n, root_n, root_n, &proof),
                    "wrong old root ({m}, {n})"
                );
                if n < 300 {
                    let bigger = &roots[n as usize + 1];
                    assert!(
                        !verify_consistency(m, n + 1, root_m, bigger, &proof),
                        "bigger size ({m}, {n})"
                    );
                }
                let mut bad = proof.clone();
                let last = bad.len() - 1;
                bad[last][(m % 32) as usize] ^= 1 << (n % 8);
                assert!(
                    !verify_consistency(m, n, root_m, root_n, &bad),
                    "flipped ({m}, {n})"
                );
            }
        }
    }
}

#[test]
fn proof_requests_outside_the_tree_are_refused() {
    let tree = MemTree::with_leaves(&leaves()[..5]);
    assert!(matches!(
        inclusion_proof(&tree, 5, 5),
        Err(ProofError::Invalid(_))
    ));
    assert!(matches!(
        consistency_proof(&tree, 0, 5),
        Err(ProofError::Invalid(_))
    ));
    assert!(matches!(
        consistency_proof(&tree, 6, 5),
        Err(ProofError::Invalid(_))
    ));
    assert!(!verify_inclusion(&[0; 32], 0, 0, &[], &[0; 32]));
    assert!(!verify_consistency(0, 5, &[0; 32], &[0; 32], &[]));
}

#[test]
fn frontier_reloads_from_stored_nodes() {
    let leaves = leaves();
    let tree = MemTree::with_leaves(&leaves);
    for size in [0u64, 1, 2, 3, 7, 8, 100, 255, 256, 300] {
        let mut loaded = Frontier::load(&tree, size).unwrap();
        let mut grown = Frontier::new();
        for leaf in &leaves[..size as usize] {
            grown.push(leaf_hash(leaf));
        }
        assert_eq!(loaded, grown, "size {size}");
        if size < 300 {
            let next = leaf_hash(&leaves[size as usize]);
            assert_eq!(loaded.push(next), grown.push(next));
        }
    }
}

/// For every (index, size) and (m, n) up to 40, changing any byte of any
/// proof hash makes the proof fail.
#[test]
fn every_byte_of_every_proof_up_to_40_matters() {
    let tree = MemTree::with_leaves(&leaves());
    let roots: Vec<Hash> = (0..=40).map(|n| root(&tree, n).unwrap()).collect();
    let leaf_hashes: Vec<Hash> = leaves().iter().map(|l| leaf_hash(l)).collect();
    for size in 1..=40u64 {
        for index in 0..size {
            let proof = inclusion_proof(&tree, index, size).unwrap();
            for at in 0..proof.len() {
                for byte in 0..32 {
                    let mut bad = proof.clone();
                    bad[at][byte] ^= 1 << (byte % 8);
                    let leaf = &leaf_hashes[index as usize];
                    assert!(
                        !verify_inclusion(leaf, index, size, &bad, &roots[size as usize]),
                        "({index}, {size}) hash {at} byte {byte}"
                    );
                }
            }
        }
        for m in 1..size {
            let proof = consistency_proof(&tree, m, size).unwrap();
            for at in 0..proof.len() {
                for byte in 0..32 {
                    let mut bad = proof.clone();
                    bad[at][byte] ^= 1 << (byte % 8);
                    assert!(
                        !verify_consistency(
                            m,
                            size,
                            &roots[m as usize],
                            &roots[size as usize],
                            &bad
                        ),
                        "({m}, {size}) hash {at} byte {byte}"
                    );
                }
            }
        }
    }
}
