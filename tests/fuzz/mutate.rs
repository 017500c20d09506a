//! Mutations for the stable fuzz harness: byte flips, inserts, deletions,
//! duplicated and spliced ranges, dictionary tokens (path tricks, JSON
//! members, numbers at the edges of a double), deep nesting, truncation.
//! Deterministic for a given seed.

/// SplitMix64: small, fast, and the same sequence on every machine.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Request and JSON tokens the targets' parsers give meaning to.
const DICTIONARY: &[&[u8]] = &[
    b"CONNECT ",
    // paths and requests
    b"..",
    b"%2e",
    b"%2E",
    b"%2f",
    b"%2F",
    b"%5c",
    b"%00",
    b"%",
    b"/./",
    b"/../",
    b"//",
    b"?",
    b"#",
    b"/v1/chat/completions",
    b"/v1/completions",
    b"/v1/embeddings",
    b"/v1/models",
    b"/v2/models/",
    b"/v2/models/credit/infer",
    b"/versions/",
    b"/infer",
    b"/models/raw",
    b"/m/score.v1~x",
    b"POST ",
    b"GET ",
    b"HEAD ",
    b"\n\n",
    b"\ngovgate-model-version: ",
    b"\nx-govgate-caller: ",
    b"\nx-govgate-attr-sex: ",
    b"\ncontent-type: application/json",
    // JSON
    b"{\"model\":",
    b"\"model\"",
    b"\"renamed\"",
    b"\"same\"",
    b"\"chat\"",
    b"\\u0000",
    b"\\ud800",
    b"\\udc00",
    b"\\ud83d\\ude00",
    b"\\\"",
    b"\\/",
    b"\xc3\xa9",
    b"\xef\xbf\xbf",
    b"\xf0\x90\x80\x80",
    b"\xed\xa0\x80",
    b"\xff",
    b"true",
    b"null",
    b"[]",
    b"{}",
    b",",
    b":",
];

/// Numbers at the edges of what a double, a `u64` or JSON holds.
const NUMBERS: &[&[u8]] = &[
    b"-0",
    b"1e400",
    b"1e-400",
    b"5e-324",
    b"1.7976931348623157e308",
    b"9007199254740993",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"0.1",
    b"1e21",
    b"+1",
    b"01",
];

/// Selector and KServe V2 tokens.
const KPI: &[&[u8]] = &[
    b"*",
    b"/*",
    b"~0",
    b"~1",
    b"~2",
    b"\"inputs\":[",
    b"\"outputs\":[",
    b"\"name\":\"score\"",
    b"\"name\":\"features\"",
    b"\"shape\":[",
    b"\"data\":[",
    b"\"parameters\":{\"purpose\":",
    b"\n---\n",
];

/// Bytes that often sit at a parser's decision points.
const INTERESTING: &[u8] = b"\x00\x7f\x80\xff\"\\/.%{}[]:,\n\r\t -+0e~*";

pub(crate) struct Mutator {
    /// Mutated inputs are cut to this length.
    pub(crate) max_len: usize,
}

impl Mutator {
    /// A mutation of one of `pool` (which is never empty).
    pub(crate) fn mutate(&self, rng: &mut Rng, pool: &[Vec<u8>]) -> Vec<u8> {
        let mut out = pool[rng.below(pool.len())].clone();
        for _ in 0..1 + rng.below(4) {
            self.once(rng, &mut out, pool);
        }
        out.truncate(self.max_len);
        out
    }

    fn once(&self, rng: &mut Rng, out: &mut Vec<u8>, pool: &[Vec<u8>]) {
        let len = out.len();
        let at = rng.below(len + 1);
        match rng.below(11) {
            0 if len > 0 => out[at.min(len - 1)] ^= 1 << rng.below(8),
            1 if len > 0 => out[at.min(len - 1)] = INTERESTING[rng.below(INTERESTING.len())],
            2 => out.insert(at, rng.next() as u8),
            3 if len > 0 => {
                let end = (at + 1 + rng.below(16)).min(len);
                out.drain(at.min(len - 1)..end);
            }
            4 if len > 0 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(64)).min(len);
                let chunk = out[start..end].to_vec();
                let to = rng.below(out.len() + 1);
                out.splice(to..to, chunk);
            }
            5 | 6 => {
                let list = [DICTIONARY, NUMBERS, KPI][rng.below(3)];
                let token = list[rng.below(list.len())];
                out.splice(at..at, token.iter().copied());
            }
            7 => {
                // Splice: this input's head, another's tail.
                let other = &pool[rng.below(pool.len())];
                let from = rng.below(other.len() + 1);
                out.truncate(at);
                out.extend_from_slice(&other[from..]);
            }
            8 => {
                let depth = [10, 127, 128, 129, 500, 5000][rng.below(6)];
                let (open, close): (&[u8], &[u8]) = match rng.below(3) {
                    0 => (b"[", b"]"),
                    1 => (b"{\"a\":", b"}"),
                    _ => (b"[{\"x\":", b"}]"),
                };
                let mut nested = open.repeat(depth);
                if rng.below(2) == 0 {
                    nested.extend_from_slice(b"1");
                    nested.extend(close.repeat(depth));
                }
                out.splice(at..at, nested);
            }
            9 => {
                // A number where a digit was.
                if let Some(digit) = out.iter().position(|b| b.is_ascii_digit()) {
                    let end = digit
                        + out[digit..]
                            .iter()
                            .take_while(|b| b.is_ascii_digit() || b".eE+-".contains(b))
                            .count();
                    let token = NUMBERS[rng.below(NUMBERS.len())];
                    out.splice(digit..end, token.iter().copied());
                }
            }
            _ => out.truncate(at),
        }
    }
}
