#![cfg(all(feature = "lint", feature = "words", feature = "verify"))]
//! The log's Merkle tree against the published Certificate Transparency vectors
//! (RFC 6962 / transparency-dev `testonly`), and against the RFC 9162 definitions written
//! out naively, for every tree shape up to 70 leaves.

#![cfg(feature = "verify")]

use proptest::prelude::*;
use unticked_core::merkle::{self, empty_root, leaf_hash, node_hash, verify_consistency, verify_inclusion, Hash, Tree};

fn h(hex: &str) -> Hash {
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    bytes.try_into().unwrap()
}

const LEAVES: [&[u8]; 8] = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
];

const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

fn reference_tree() -> Tree {
    let mut tree = Tree::new();
    for leaf in LEAVES {
        tree.push(leaf_hash(leaf));
    }
    tree
}

#[test]
fn roots_match_the_published_vectors_at_every_size() {
    let tree = reference_tree();
    for (size, root) in ROOTS.iter().enumerate() {
        assert_eq!(tree.root(size as u64), Some(h(root)), "size {size}");
    }
    assert_eq!(tree.root(9), None);
}

#[test]
fn inclusion_proofs_match_the_published_vectors() {
    let tree = reference_tree();
    let vectors: [(u64, u64, &[&str]); 4] = [
        (0, 1, &[]),
        (
            0,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            3,
            &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
        ),
    ];
    for (index, size, expected) in vectors {
        let proof = tree.inclusion(index, size).unwrap();
        assert_eq!(
            proof,
            expected.iter().map(|x| h(x)).collect::<Vec<_>>(),
            "{index}/{size}"
        );
        let root = h(ROOTS[size as usize]);
        assert!(verify_inclusion(&tree.leaf(index).unwrap(), index, size, &proof, &root));
    }
}

#[test]
fn consistency_proofs_match_the_published_vectors() {
    let tree = reference_tree();
    let vectors: [(u64, u64, &[&str]); 4] = [
        (1, 1, &[]),
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];
    for (old, size, expected) in vectors {
        let proof = tree.consistency(old, size).unwrap();
        assert_eq!(proof, expected.iter().map(|x| h(x)).collect::<Vec<_>>(), "{old}→{size}");
        let (old_root, root) = (h(ROOTS[old as usize]), h(ROOTS[size as usize]));
        assert!(verify_consistency(old, size, &old_root, &root, &proof));
    }
}

/// RFC 9162 §2.1.1 MTH, written out over the whole list.
fn naive_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = (n - 1).next_power_of_two() / if (n - 1).is_power_of_two() { 1 } else { 2 };
            let k = if k >= n { k / 2 } else { k };
            node_hash(&naive_root(&leaves[..k]), &naive_root(&leaves[k..]))
        }
    }
}

fn leaves(n: usize) -> Vec<Hash> {
    (0..n).map(|i| leaf_hash(&(i as u32).to_be_bytes())).collect()
}

#[test]
fn every_root_and_proof_agrees_with_the_definitions_up_to_70_leaves() {
    let all = leaves(70);
    let mut tree = Tree::new();
    for (n, leaf) in all.iter().enumerate() {
        tree.push(*leaf);
        let size = n as u64 + 1;
        assert_eq!(tree.root(size), Some(naive_root(&all[..=n])), "root {size}");
        let root = tree.root(size).unwrap();
        for index in 0..size {
            let proof = tree.inclusion(index, size).unwrap();
            assert!(verify_inclusion(&all[index as usize], index, size, &proof, &root));
            if index ^ 1 < size {
                let moved = index ^ 1;
                assert!(
                    !verify_inclusion(&all[index as usize], moved, size, &proof, &root),
                    "{index} as {moved}"
                );
            }
            if let Some(other) = all.get(index as usize + 1) {
                assert!(!verify_inclusion(other, index, size, &proof, &root));
            }
        }
        for old in 0..=size {
            let proof = tree.consistency(old, size).unwrap();
            let old_root = tree.root(old).unwrap();
            assert!(verify_consistency(old, size, &old_root, &root, &proof), "{old}→{size}");
            if old > 0 && old < size {
                assert!(
                    !verify_consistency(old, size, &root, &root, &proof),
                    "{old}→{size} wrong old root"
                );
            }
        }
    }
}

#[test]
fn pop_undoes_push_exactly() {
    let all = leaves(40);
    let mut tree = Tree::new();
    let mut snapshots = vec![tree.clone()];
    for leaf in &all {
        tree.push(*leaf);
        snapshots.push(tree.clone());
    }
    while tree.pop().is_some() {
        snapshots.pop();
        assert_eq!(&tree, snapshots.last().unwrap());
    }
}

proptest! {
    /// Any single change to a proof, a leaf or a root is refused.
    #[test]
    fn a_tampered_proof_never_verifies(size in 2u64..200, index_seed in any::<u64>(), byte in 0usize..32, bit in 0u8..8) {
        let all = leaves(size as usize);
        let mut tree = Tree::new();
        all.iter().for_each(|l| tree.push(*l));
        let index = index_seed % size;
        let root = tree.root(size).unwrap();
        let mut proof = tree.inclusion(index, size).unwrap();
        prop_assert!(verify_inclusion(&all[index as usize], index, size, &proof, &root));
        proof[0][byte] ^= 1 << bit;
        prop_assert!(!verify_inclusion(&all[index as usize], index, size, &proof, &root));
        let old = 1 + index % (size - 1);
        let mut consistency = tree.consistency(old, size).unwrap();
        let old_root = tree.root(old).unwrap();
        consistency[0][byte] ^= 1 << bit;
        prop_assert!(!merkle::verify_consistency(old, size, &old_root, &root, &consistency));
    }
}
