"""Tests for tools/govgate_verify.py.

Run from the repository root:

    python3 -m unittest tools/test_govgate_verify.py

The test log below is built with this file's own helpers (json.dumps with
sorted keys for the canonical bytes of its ASCII-keyed, float-free entries,
and a direct RFC 6962 MTH/PATH/PROOF), so the verifier is checked against
code it does not share.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import io
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest
from fractions import Fraction
from unittest import mock

import blake3
import nacl.signing

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.join(HERE, "govgate_verify.py")
DATA = os.path.join(HERE, os.pardir, "tests", "data")

sys.path.insert(0, HERE)
import govgate_verify as gv  # noqa: E402

with open(os.path.join(DATA, "jcs_vectors.json"), encoding="utf-8") as _f:
    JCS = json.load(_f)
with open(os.path.join(DATA, "rfc6962_sha256_vectors.json"), encoding="utf-8") as _f:
    TREE = json.load(_f)

ORIGIN = "govgate.example/log"
SEED = bytes.fromhex(TREE["checkpoint"]["seed_hex"])
OTHER_SEED = bytes(range(100, 132))
THIRD_SEED = bytes(range(200, 232))


def h(x: str) -> bytes:
    return bytes.fromhex(x)


# --- independent helpers ----------------------------------------------------


def canonical(obj) -> bytes:
    # Equal to RFC 8785 for objects with ASCII keys, strings, small ints, null, bools.
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def t_leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def t_node(a: bytes, b: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + a + b).digest()


def t_split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def t_mth(leaves) -> bytes:
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = t_split(n)
    return t_node(t_mth(leaves[:k]), t_mth(leaves[k:]))


def t_path(m: int, leaves) -> list:
    n = len(leaves)
    if n <= 1:
        return []
    k = t_split(n)
    if m < k:
        return t_path(m, leaves[:k]) + [t_mth(leaves[k:])]
    return t_path(m - k, leaves[k:]) + [t_mth(leaves[:k])]


def t_subproof(m: int, leaves, whole: bool) -> list:
    n = len(leaves)
    if m == n:
        return [] if whole else [t_mth(leaves)]
    k = t_split(n)
    if m <= k:
        return t_subproof(m, leaves[:k], whole) + [t_mth(leaves[k:])]
    return t_subproof(m - k, leaves[k:], False) + [t_mth(leaves[:k])]


def vkey_for(seed: bytes, name: str = ORIGIN) -> str:
    pub = bytes(nacl.signing.SigningKey(seed).verify_key)
    kid = hashlib.sha256(name.encode() + b"\n\x01" + pub).digest()[:4]
    key = base64.b64encode(b"\x01" + pub).decode()
    return f"{name}+{kid.hex()}+{key}"


def signed_checkpoint(seed: bytes, size: int, root: bytes, origin: str = ORIGIN, name: str | None = None) -> bytes:
    name = name or origin
    body = f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n".encode()
    key = nacl.signing.SigningKey(seed)
    kid = hashlib.sha256(name.encode() + b"\n\x01" + bytes(key.verify_key)).digest()[:4]
    sig = key.sign(body).signature
    line = f"\u2014 {name} {base64.b64encode(kid + sig).decode()}\n".encode()
    return body + b"\n" + line


def entry_signature(seed: bytes, raw: bytes, context: bool = True) -> bytes:
    """Per-entry signature (docs/audit-format.md section 10), made here with PyNaCl."""
    message = (b"govgate-entry-signature/v1\n" if context else b"") + raw
    return nacl.signing.SigningKey(seed).sign(message).signature


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def noncanonical_last(ch: str) -> str:
    """The base64 digit `ch` with its low bits set: before "==" they are unused, so the text is not canonical."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    return alphabet[alphabet.index(ch) | 0x0F]


def tlog_proof(index: int, path, note: bytes) -> bytes:
    head = f"c2sp.org/tlog-proof@v1\nindex {index}\n" + "".join(base64.b64encode(p).decode() + "\n" for p in path)
    return head.encode() + b"\n" + note


def payload_for(seq: int) -> tuple:
    """(request salt, response salt, request capture, response capture) of decision seq."""
    request = (b'{"inputs":[{"name":"features","data":[%d,4000,24]}]}' % seq).ljust(84, b" ")
    response = (b'{"outputs":[{"name":"score","data":[0.%d]}]}' % seq).ljust(138, b" ")
    return hashlib.sha256(b"salt-rq%d" % seq).digest(), hashlib.sha256(b"salt-rs%d" % seq).digest(), request, response


def commitment(salt: bytes, data: bytes) -> str:
    return blake3.blake3(salt + data).hexdigest()


def build_entries(count: int, origin: str = ORIGIN, rotations=None) -> list:
    """Canonical entry bytes for seq 0..count-1, chained with BLAKE3.

    `rotations` maps a seq to the (old_vkey, new_vkey) of a key_rotated entry there.
    """
    out = []
    prev = "0" * 64
    for seq in range(count):
        time = f"2026-11-27T10:00:{seq:02d}.000Z"
        if rotations and seq in rotations:
            old_vkey, new_vkey = rotations[seq]
            entry = {"kind": "key_rotated", "origin": origin, "prev_hash": prev, "seq": seq, "time": time}
            for member, value in (("old_vkey", old_vkey), ("new_vkey", new_vkey)):
                if value is not None:
                    entry[member] = value
        elif seq == 0:
            entry = {"kind": "gateway_started", "origin": origin, "prev_hash": prev, "seq": 0, "time": time}
        else:
            rq_salt, rs_salt, rq, rs = payload_for(seq)
            entry = {
                "approval_seq": None,
                "caller": "alice" if seq % 2 else "anonymous",
                "decision_id": hashlib.sha256(b"id%d" % seq).hexdigest()[:32],
                "error_code": None,
                "kind": "decision",
                "model": "credit-scoring",
                "origin": origin,
                "outcome": "served",
                "payload_mode": "full",
                "prev_hash": prev,
                "protocol": "kserve_v2",
                "request": {"captured": len(rq), "commitment": commitment(rq_salt, rq), "length": 84},
                "response": {"captured": len(rs), "commitment": commitment(rs_salt, rs), "length": 138},
                "route": "kserve_v2.infer",
                "seq": seq,
                "status": 200,
                "time": time,
                "timings": {"complete_us": 11132 + seq, "received_unix_ms": 1795779308556 + seq, "upstream_head_us": 11109},
                "version": "1",
            }
            if seq == 3:
                entry["note"] = 'caf\u00e9 \u20ac "q" \\ \n\t\x01 \U0001f600'
        raw = canonical(entry)
        out.append(raw)
        prev = blake3.blake3(raw).hexdigest()
    return out


def run(*args: str) -> tuple[int, str, str]:
    proc = subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def fail_lines(stdout: str) -> list:
    return [line for line in stdout.splitlines() if line.startswith("FAIL ")]


# --- vectors ----------------------------------------------------------------


class JcsVectorTests(unittest.TestCase):
    def test_vectors(self):
        for v in JCS["vectors"]:
            with self.subTest(v["name"]):
                got = gv.canonicalize(gv.parse_json(v["input"].encode("utf-8")))
                self.assertEqual(got.hex(), v["canonical_utf8_hex"])
                self.assertEqual(gv.parse_canonical(got), gv.parse_json(got))

    def test_must_fail(self):
        for v in JCS["must_fail"]:
            with self.subTest(v["name"]):
                with self.assertRaises(gv.VerifyError):
                    gv.canonicalize(gv.parse_json(v["input"].encode("utf-8")))

    def test_number_samples(self):
        for v in JCS["number_samples"]:
            with self.subTest(v["ieee754_hex"]):
                value = struct.unpack(">d", h(v["ieee754_hex"]))[0]
                if v["must_fail"]:
                    with self.assertRaises(gv.VerifyError):
                        gv.format_number(value)
                else:
                    self.assertEqual(gv.format_number(value), v["canonical"])

    def test_non_canonical_refused(self):
        for text in (b'{"b":1,"a":2}', b'{"a": 1}', b'{"a":1.0}', b'{"a":"\\u0041"}', b'{"a":"\\u001F"}', b'{"a":1}\n'):
            with self.subTest(text):
                with self.assertRaises(gv.VerifyError):
                    gv.parse_canonical(text)

    @staticmethod
    def fast_path_samples() -> list:
        samples = [bytes.fromhex(v["canonical_utf8_hex"]) for v in JCS["vectors"]]
        samples += [v["input"].encode("utf-8") for v in JCS["vectors"] + JCS["must_fail"]]
        samples += [
            b'{"a":1,"a":1}', b'{"a":"\\udead"}', b'{"a":-0}', b"12345678901234567", b"[9007199254740993]",
            b'{"a":1e2}', b'{"a":100}', b'{"a":"\\u00e9"}', '{"a":"\u00e9"}'.encode(), b'{"a":"\\/"}',
            '{"\U0001f600":1,"\ufb33":2}'.encode(), '{"\ufb33":2,"\U0001f600":1}'.encode(),
            b'{"a":NaN}', b'{"a":Infinity}', b'{"a":"\x7f"}', b'{"a":"\\u007f"}', b'{"a":"\\u001f"}', b' {"a":1}',
            b'{"a":1} ', b'{"a":"\\b\\f\\n\\r\\t"}', b'{"a":[1,2,{"b":null,"a":true}]}', b'\xff',
        ]
        samples += build_entries(5)
        # Every character of the BMP but the surrogates, in a name and in a value, and its escape.
        for cp in range(0x10000):
            if not 0xD800 <= cp <= 0xDFFF:
                c = chr(cp)
                samples.append(json.dumps({"a" + c: c, c: [c]}, ensure_ascii=False, separators=(",", ":")).encode())
                samples.append(b'["\\u%04x","\\u%04X"]' % (cp, cp))
        return samples

    def test_fast_path_accepts_only_what_the_full_check_accepts(self):
        """parse_canonical's fast path (a C JSON codec: msgspec's when installed, else the standard
        library's; both tried) says canonical only where RFC 8785 does."""

        def full(data: bytes) -> bool:
            try:
                return gv.canonicalize(gv.parse_json(data)) == data
            except gv.VerifyError:
                return False

        samples = self.fast_path_samples()
        paths = [("installed", gv._round_trip), ("standard library", gv._stdlib_round_trip)]
        for name, round_trip in paths:
            with mock.patch.object(gv, "_round_trip", round_trip):
                accepted = 0
                for data in samples:
                    if gv.fast_canonical(data):
                        accepted += 1
                        if not full(data):
                            self.fail(f"{name}: the fast path takes {data!r}, which is not canonical")
                # And it does take the usual entry, or the verifier is slow for nothing.
                self.assertTrue(all(gv.fast_canonical(e) for e in build_entries(5) if e.isascii()), name)
                self.assertGreater(accepted, 60000, name)

    @unittest.skipIf(gv._msgspec is None, "msgspec is not installed (the standard library's codec is used)")
    def test_msgspec_and_the_standard_library_judge_alike(self):
        """With msgspec the round trip is its codec's: the same lines pass, with the same values
        (and the values of lines found canonical, parse_checked's, are the same too)."""
        for data in self.fast_path_samples():
            value = gv._msgspec_round_trip(data)
            if value != gv._stdlib_round_trip(data):
                self.fail(f"{data!r}: msgspec gives {value!r}, the standard library {gv._stdlib_round_trip(data)!r}")
            if value is not None:
                self.assertEqual(gv._decode_fast(data), gv._stdlib_decode(data))

    def test_integers_as_doubles(self):
        self.assertEqual(gv.canonicalize(gv.parse_json(b"[1E2,100,-0,9007199254740993]")), b"[100,100,0,9007199254740992]")


class TreeVectorTests(unittest.TestCase):
    def test_leaves_and_roots(self):
        leaves = [gv.leaf_hash(h(x)) for x in TREE["leaf_inputs"]]
        self.assertEqual([x.hex() for x in leaves], TREE["leaf_hashes"])
        for n, root in enumerate(TREE["roots"]):
            with self.subTest(size=n):
                self.assertEqual(gv.merkle_root(leaves, n).hex(), root)

    def test_inclusion(self):
        for c in TREE["inclusion"] + TREE["sha256_crosscheck"]["inclusion"]:
            with self.subTest(index=c["index"], size=c["size"]):
                gv.verify_inclusion(c["index"], c["size"], h(c["leaf_hash"]), [h(p) for p in c["path"]], h(c["root"]))

    def test_inclusion_invalid(self):
        for c in TREE["inclusion_invalid"]:
            with self.subTest(c["reason"]):
                with self.assertRaises(gv.VerifyError):
                    gv.verify_inclusion(
                        c["index"], c["size"], h(c["leaf_hash"]), [h(p) for p in c["path"]], h(c["root"])
                    )

    def test_consistency(self):
        for c in TREE["consistency"] + TREE["sha256_crosscheck"]["consistency"]:
            with self.subTest(m=c["m"], n=c["n"]):
                gv.verify_consistency(c["m"], c["n"], h(c["root_m"]), h(c["root_n"]), [h(p) for p in c["proof"]])

    def test_consistency_invalid(self):
        for c in TREE["consistency_invalid"]:
            with self.subTest(c["reason"]):
                with self.assertRaises(gv.VerifyError):
                    gv.verify_consistency(c["m"], c["n"], h(c["root_m"]), h(c["root_n"]), [h(p) for p in c["proof"]])

    def test_against_independent_tree(self):
        leaves = [t_leaf(b"x%d" % i) for i in range(40)]
        for n in range(0, 41):
            self.assertEqual(gv.merkle_root(leaves, n), t_mth(leaves[:n]), n)
        for n in range(1, 34):
            root_n = t_mth(leaves[:n])
            for i in range(n):
                path = t_path(i, leaves[:n])
                gv.verify_inclusion(i, n, leaves[i], path, root_n)
                if path:
                    bad = [path[0][:-1] + bytes([path[0][-1] ^ 1])] + path[1:]
                    with self.assertRaises(gv.VerifyError):
                        gv.verify_inclusion(i, n, leaves[i], bad, root_n)
            for m in range(0, n + 1):
                proof = t_subproof(m, leaves[:n], True) if 0 < m < n else []
                gv.verify_consistency(m, n, t_mth(leaves[:m]), root_n, proof)
                if 0 < m < n:
                    with self.assertRaises(gv.VerifyError):
                        gv.verify_consistency(m, n, t_mth(leaves[:m]), root_n, proof[:-1])
                    with self.assertRaises(gv.VerifyError):
                        gv.verify_consistency(m, n, t_mth(leaves[: m - 1]), root_n, proof)

    def test_blake3_chain(self):
        prev = "0" * 64
        for e in TREE["blake3_chain"]["entries"]:
            canon = e["canonical_utf8"].encode("utf-8")
            self.assertEqual(gv.canonicalize(e["entry"]), canon)
            gv.parse_canonical(canon)
            self.assertEqual(gv.blake3_hex(canon), e["entry_hash"])
            self.assertEqual(e["entry"]["prev_hash"], prev)
            self.assertEqual(gv.leaf_hash(canon).hex(), e["merkle_leaf_hash"])
            prev = e["entry_hash"]


class NoteVectorTests(unittest.TestCase):
    def test_checkpoint(self):
        cp = TREE["checkpoint"]
        vkey = gv.parse_vkey(cp["vkey"])
        self.assertEqual(vkey.key_id.hex(), cp["key_id_hex"])
        self.assertEqual(vkey.public_key.hex(), cp["public_key_hex"])
        self.assertEqual(vkey_for(SEED), cp["vkey"])
        note = cp["signed_note"].encode("utf-8")
        self.assertEqual(note, signed_checkpoint(SEED, cp["tree_size"], h(cp["root_hex"])))
        problems = []
        parsed = gv.open_checkpoint(note, vkey, problems)
        self.assertEqual(problems, [])
        self.assertEqual((parsed.origin, parsed.size, parsed.root.hex()), (cp["origin"], 300, cp["root_hex"]))
        with self.assertRaises(gv.VerifyError):
            gv.verify_note(note.replace(b"\n300\n", b"\n299\n"), vkey)
        with self.assertRaises(gv.VerifyError):
            gv.verify_note(note, gv.parse_vkey(vkey_for(OTHER_SEED)))

    def test_vkey_with_plus_in_base64(self):
        # The vector's key base64 contains '+': only the first two '+' separate fields.
        vkey = gv.parse_vkey(TREE["checkpoint"]["vkey"])
        self.assertIn("+", TREE["checkpoint"]["vkey"].split("+", 2)[2])
        self.assertEqual(vkey.name, ORIGIN)

    def test_bad_vkeys(self):
        good = TREE["checkpoint"]["vkey"]
        name, kid, key = good.split("+", 2)
        for bad in (f"{name}+{kid}", f"{name}+00000000+{key}", f"+{kid}+{key}", f"{name}+{kid}+{key[:-4]}"):
            with self.subTest(bad):
                with self.assertRaises(gv.UsageError):
                    gv.parse_vkey(bad)

    def test_tlog_proof_vector(self):
        tp = TREE["tlog_proof"]
        proof = gv.parse_tlog_proof(tp["text"].encode("utf-8"))
        self.assertEqual(proof.index, tp["index"])
        self.assertEqual([p.hex() for p in proof.path], tp["path"])
        self.assertEqual(proof.note, TREE["checkpoint"]["signed_note"].encode("utf-8"))
        vkey = gv.parse_vkey(TREE["checkpoint"]["vkey"])
        cp = gv.parse_checkpoint(gv.verify_note(proof.note, vkey))
        gv.verify_inclusion(proof.index, cp.size, gv.leaf_hash(h(tp["leaf_input_hex"])), proof.path, cp.root)

    def test_selftest_command(self):
        rc, out, err = run("selftest")
        self.assertEqual(rc, 0, out + err)
        self.assertTrue(out.startswith("OK selftest"), out)


# --- a log built here -------------------------------------------------------


class LogTestCase(unittest.TestCase):
    N = 12

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.entries = build_entries(self.N)
        self.leaves = [t_leaf(e) for e in self.entries]
        self.vkey = vkey_for(SEED)

    def write(self, name: str, data: bytes) -> str:
        path = os.path.join(self.tmp.name, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def checkpoint(self, size=None, seed=SEED, root=None, **kw) -> bytes:
        size = self.N if size is None else size
        root = t_mth(self.leaves[:size]) if root is None else root
        return signed_checkpoint(seed, size, root, **kw)

    def run_log(self, lines, note=None, vkey=None):
        entries = self.write("entries.jsonl", b"".join(line + b"\n" for line in lines))
        cp = self.write("checkpoint", self.checkpoint() if note is None else note)
        return run("log", "--vkey", vkey or self.vkey, "--entries", entries, "--checkpoint", cp)

    def assertFirstFail(self, result, prefix: str):
        rc, out, err = result
        self.assertEqual(rc, 1, out + err)
        fails = fail_lines(out)
        self.assertTrue(fails, out)
        self.assertTrue(fails[0].startswith(f"FAIL {prefix}"), out)


class LogTests(LogTestCase):
    def test_valid_log(self):
        rc, out, err = self.run_log(self.entries)
        self.assertEqual(rc, 0, out + err)
        self.assertIn(f"OK log origin={ORIGIN} size={self.N} entries={self.N}", out)

    def test_prev_hash_must_be_lowercase_hex(self):
        """The chain compares prev_hash with the hash it expects before the hex check: a prev_hash that is the
        same hash in capitals is still refused for its form (not taken for the expected one)."""
        lines = list(self.entries)
        entry = json.loads(lines[2])
        self.assertNotEqual(entry["prev_hash"], entry["prev_hash"].upper())
        entry["prev_hash"] = entry["prev_hash"].upper()
        lines[2] = canonical(entry)
        self.assertFirstFail(self.run_log(lines), "seq 2: line 3: prev_hash ")
        self.assertIn("is not 64 lowercase hex digits", self.run_log(lines)[1])

    def test_checkpoint_smaller_than_log(self):
        rc, out, err = self.run_log(self.entries, note=self.checkpoint(size=7))
        self.assertEqual(rc, 0, out + err)
        self.assertIn("size=7 entries=12", out)

    def test_empty_log(self):
        rc, out, err = self.run_log([], note=self.checkpoint(size=0))
        self.assertEqual(rc, 0, out + err)

    def test_changed_byte_in_entry(self):
        k = 5
        original = self.entries[k]
        text = original.decode()
        did = json.loads(text)["decision_id"]
        cases = {
            "decision_id": text.replace(did, did[:-1] + ("0" if did[-1] != "0" else "1")),
            "time": text.replace(":05.000Z", ":06.000Z"),
            "prev_hash": self._flip_prev_hash(text),
            "seq": text.replace('"seq":5', '"seq":6'),
            "origin": text.replace('"origin":"govgate.example/log"', '"origin":"govgate.example/lag"'),
            "key order": text.replace('"caller"', '"zaller"'),
            "structure": "[" + text[1:],
            "status": text.replace('"status":200', '"status":500'),
            "nested": text.replace('"captured":84', '"captured":85'),
        }
        for what, changed in cases.items():
            with self.subTest(what):
                changed = changed.encode()
                self.assertEqual(len(changed), len(original))
                self.assertNotEqual(changed, original)
                lines = list(self.entries)
                lines[k] = changed
                self.assertFirstFail(self.run_log(lines), f"seq {k}:")

    @staticmethod
    def _flip_prev_hash(text: str) -> str:
        i = text.index('"prev_hash":"') + len('"prev_hash":"') + 10
        return text[:i] + ("a" if text[i] != "a" else "b") + text[i + 1 :]

    def test_changed_byte_in_first_and_last_entry(self):
        for k in (0, 1, self.N - 2, self.N - 1):
            with self.subTest(seq=k):
                lines = list(self.entries)
                lines[k] = lines[k].replace(b":%02d.000Z" % k, b":59.000Z")
                self.assertNotEqual(lines[k], self.entries[k])
                self.assertFirstFail(self.run_log(lines), f"seq {k}:")

    def test_inserted_whitespace(self):
        lines = list(self.entries)
        lines[4] = lines[4].replace(b',"kind"', b', "kind"')
        self.assertFirstFail(self.run_log(lines), "seq 4:")

    def test_deleted_entry(self):
        for k in (0, 4, self.N - 1):
            with self.subTest(seq=k):
                lines = self.entries[:k] + self.entries[k + 1 :]
                self.assertFirstFail(self.run_log(lines), f"seq {k}:")

    def test_swapped_entries(self):
        for k in (0, 6, self.N - 2):
            with self.subTest(seq=k):
                lines = list(self.entries)
                lines[k], lines[k + 1] = lines[k + 1], lines[k]
                self.assertFirstFail(self.run_log(lines), f"seq {k}:")

    def test_truncated_tail(self):
        rc, out, err = self.run_log(self.entries[:9])
        self.assertFirstFail((rc, out, err), "seq 9:")
        self.assertIn("missing", fail_lines(out)[0])

    def test_checkpoint_signed_by_another_key(self):
        rc, out, err = self.run_log(self.entries, note=self.checkpoint(seed=OTHER_SEED))
        self.assertFirstFail((rc, out, err), "checkpoint:")
        self.assertIn("no signature by", out)

    def test_vkey_of_another_key(self):
        self.assertFirstFail(self.run_log(self.entries, vkey=vkey_for(OTHER_SEED)), "checkpoint:")

    def test_checkpoint_tampered(self):
        note = self.checkpoint().replace(b"\n12\n", b"\n11\n")
        self.assertFirstFail(self.run_log(self.entries, note=note), "checkpoint:")

    def test_checkpoint_signed_with_wrong_root(self):
        other = build_entries(self.N, origin=ORIGIN)
        other[1] = other[1].replace(b"alice", b"alicf")
        self.assertNotEqual(other[1], self.entries[1])
        root = t_mth([t_leaf(e) for e in other])
        rc, out, err = self.run_log(self.entries, note=self.checkpoint(root=root))
        self.assertEqual(rc, 1, out)
        self.assertIn("Merkle root", out)

    def test_origin_differs(self):
        name = "govgate.example/other"
        note = signed_checkpoint(SEED, self.N, t_mth(self.leaves), origin=name)
        rc, out, err = self.run_log(self.entries, note=note, vkey=vkey_for(SEED, name))
        self.assertFirstFail((rc, out, err), "seq 0:")
        self.assertIn("origin", out)

    def test_checkpoint_origin_not_key_name(self):
        note = signed_checkpoint(SEED, self.N, t_mth(self.leaves), origin=ORIGIN, name="govgate.example/key")
        rc, out, err = self.run_log(self.entries, note=note, vkey=vkey_for(SEED, "govgate.example/key"))
        self.assertFirstFail((rc, out, err), "checkpoint: origin")


class PredecessorTests(unittest.TestCase):
    """Entry 0 `ledger_restarted` citing the previous log's checkpoint."""

    def check(self, first: dict, seed: bytes = SEED) -> tuple[list, list]:
        problems: list = []
        notes: list = []
        vkey = gv.parse_vkey(vkey_for(SEED))
        gv.check_predecessor([(0, first)], vkey, ORIGIN, problems, notes)
        return problems, notes

    def test_a_checkpoint_of_the_old_origin_by_the_same_key_is_named(self):
        note = signed_checkpoint(SEED, 6, bytes(32), origin="old.example/log").decode()
        problems, notes = self.check({"kind": "ledger_restarted", "previous_checkpoint": note})
        self.assertEqual(problems, [])
        self.assertIn("continues log old.example/log at size 6", notes[0])

    def test_another_key_or_the_same_origin_fails(self):
        forged = signed_checkpoint(OTHER_SEED, 6, bytes(32), origin="old.example/log").decode()
        problems, _ = self.check({"kind": "ledger_restarted", "previous_checkpoint": forged})
        self.assertIn("not signed by this log's first key", problems[0])
        own = signed_checkpoint(SEED, 6, bytes(32)).decode()
        problems, _ = self.check({"kind": "ledger_restarted", "previous_checkpoint": own})
        self.assertIn("own origin", problems[0])

    def test_without_the_member_nothing_is_checked(self):
        self.assertEqual(self.check({"kind": "ledger_restarted", "reason": "x"}), ([], []))


class ReceiptTests(LogTestCase):
    def receipt(self, k: int, size: int, index=None, path=None, entry=None, vkey=None, proof=None, signature=None):
        """Run `receipt` for seq k in a tree of `size`; `signature` (bytes) is written to a --signature file."""
        leaves = self.leaves[:size]
        path = t_path(k, leaves) if path is None else path
        note = signed_checkpoint(SEED, size, t_mth(leaves))
        proof = tlog_proof(k if index is None else index, path, note) if proof is None else proof
        entry_file = self.write("entry.json", self.entries[k] if entry is None else entry)
        proof_file = self.write("receipt.tlog-proof", proof)
        args = ["receipt", "--vkey", vkey or self.vkey, "--entry", entry_file, "--proof", proof_file]
        if signature is not None:
            args += ["--signature", self.write("entry.sig", signature)]
        return run(*args)

    def sig_file(self, k: int, **kw) -> bytes:
        """The text GET /govgate/receipts/{id}/signature serves: base64 and a newline."""
        return (b64(entry_signature(SEED, self.entries[k], **kw)) + "\n").encode()

    def test_valid_receipts(self):
        for k, size in ((5, 9), (0, 1), (0, 12), (11, 12), (8, 9)):
            with self.subTest(seq=k, size=size):
                rc, out, err = self.receipt(k, size)
                self.assertEqual(rc, 0, out + err)
                did = json.loads(self.entries[k]).get("decision_id", "-")
                self.assertIn(f"OK receipt origin={ORIGIN} size={size} seq={k} decision_id={did}", out)

    def test_entry_file_with_final_newline(self):
        rc, out, err = self.receipt(5, 9, entry=self.entries[5] + b"\n")
        self.assertEqual(rc, 0, out + err)

    def test_altered_hash(self):
        path = t_path(5, self.leaves[:9])
        for i in range(len(path)):
            with self.subTest(hash=i):
                bad = list(path)
                bad[i] = bad[i][:-1] + bytes([bad[i][-1] ^ 1])
                rc, out, err = self.receipt(5, 9, path=bad)
                self.assertFirstFail((rc, out, err), "inclusion:")

    def test_altered_index(self):
        for index in (4, 6, 13):
            with self.subTest(index=index):
                rc, out, err = self.receipt(5, 9, index=index)
                self.assertEqual(rc, 1, out)
                self.assertIn(f"FAIL entry: seq 5 is not the proof index {index}", out)
                self.assertIn("FAIL inclusion:", out)

    def test_dropped_and_extra_hash(self):
        path = t_path(5, self.leaves[:9])
        for bad in (path[:-1], path + [path[0]]):
            with self.subTest(length=len(bad)):
                self.assertFirstFail(self.receipt(5, 9, path=bad), "inclusion:")

    def test_altered_entry(self):
        entry = self.entries[5].replace(b"alice", b"alicf")
        self.assertFirstFail(self.receipt(5, 9, entry=entry), "inclusion:")

    def test_non_canonical_entry(self):
        entry = self.entries[5].replace(b',"kind"', b', "kind"')
        self.assertFirstFail(self.receipt(5, 9, entry=entry), "entry:")

    def test_entry_of_another_seq(self):
        rc, out, err = self.receipt(5, 9, entry=self.entries[6])
        self.assertEqual(rc, 1, out)
        self.assertIn("FAIL entry: seq 6 is not the proof index 5", out)

    def test_wrong_vkey(self):
        self.assertFirstFail(self.receipt(5, 9, vkey=vkey_for(OTHER_SEED)), "checkpoint:")

    def test_malformed_proof(self):
        good = tlog_proof(5, t_path(5, self.leaves[:9]), signed_checkpoint(SEED, 9, t_mth(self.leaves[:9])))
        for bad in (good.replace(b"tlog-proof@v1", b"tlog-proof@v2"), good.replace(b"index 5", b"index 05")):
            with self.subTest(bad[:40]):
                self.assertFirstFail(self.receipt(5, 9, proof=bad), "proof:")

    # per-entry signatures (--signature)

    def test_valid_signature(self):
        for k, size in ((5, 9), (0, 1), (11, 12)):
            with self.subTest(seq=k, size=size):
                did = json.loads(self.entries[k]).get("decision_id", "-")
                for text in (self.sig_file(k), self.sig_file(k).rstrip(b"\n")):
                    rc, out, err = self.receipt(k, size, signature=text)
                    self.assertEqual(rc, 0, out + err)
                    self.assertEqual(
                        out, f"OK receipt origin={ORIGIN} size={size} seq={k} decision_id={did} signature=ok\n"
                    )
        # The entry file's final newline is not part of the signed bytes either.
        rc, out, err = self.receipt(5, 9, entry=self.entries[5] + b"\n", signature=self.sig_file(5))
        self.assertEqual(rc, 0, out + err)

    def test_bad_signatures(self):
        good = entry_signature(SEED, self.entries[5])
        for what, sig in (
            ("moved from seq 4", entry_signature(SEED, self.entries[4])),
            ("moved from seq 6", entry_signature(SEED, self.entries[6])),
            ("first byte flipped", flip(good, 0)),
            ("last byte flipped", flip(good)),
            ("signed without the context line", entry_signature(SEED, self.entries[5], context=False)),
            ("signed by another key", entry_signature(OTHER_SEED, self.entries[5])),
        ):
            with self.subTest(what):
                rc, out, err = self.receipt(5, 9, signature=(b64(sig) + "\n").encode())
                self.assertEqual(rc, 1, out + err)
                self.assertEqual(fail_lines(out), ["FAIL seq 5: per-entry signature does not verify"], out)

    def test_signature_of_an_altered_entry(self):
        entry = self.entries[5].replace(b"alice", b"alicf")
        rc, out, err = self.receipt(5, 9, entry=entry, signature=self.sig_file(5))
        self.assertEqual(rc, 1, out + err)
        self.assertIn("FAIL seq 5: per-entry signature does not verify", fail_lines(out))
        self.assertIn("FAIL inclusion:", out)

    def test_malformed_signature_file(self):
        good = b64(entry_signature(SEED, self.entries[5]))
        for what, text in (
            ("not base64", b"not base64!\n"),
            ("padding missing", good.rstrip("=").encode() + b"\n"),
            ("63 bytes", b64(entry_signature(SEED, self.entries[5])[:63]).encode() + b"\n"),
            ("65 bytes", b64(entry_signature(SEED, self.entries[5]) + b"\0").encode() + b"\n"),
            ("two newlines", good.encode() + b"\n\n"),
            ("CRLF", good.encode() + b"\r\n"),
            ("leading space", b" " + good.encode()),
            ("empty", b""),
            ("not ASCII", good.encode()[:-2] + "\u00e9".encode()),
        ):
            with self.subTest(what):
                rc, out, err = self.receipt(5, 9, signature=text)
                self.assertEqual(rc, 1, out + err)
                self.assertEqual(len(fail_lines(out)), 1, out)
                self.assertTrue(fail_lines(out)[0].startswith("FAIL signature:"), out)

    def test_signature_checked_when_the_proof_is_malformed(self):
        good = tlog_proof(5, t_path(5, self.leaves[:9]), signed_checkpoint(SEED, 9, t_mth(self.leaves[:9])))
        bad = good.replace(b"tlog-proof@v1", b"tlog-proof@v2")
        sig = (b64(entry_signature(SEED, self.entries[4])) + "\n").encode()
        rc, out, err = self.receipt(5, 9, proof=bad, signature=sig)
        self.assertEqual(rc, 1, out + err)
        fails = fail_lines(out)
        self.assertTrue(fails[0].startswith("FAIL proof:"), out)
        self.assertIn("FAIL seq 5: per-entry signature does not verify", fails)

    def test_signature_file_unreadable(self):
        entry_file = self.write("entry.json", self.entries[5])
        proof_file = self.write(
            "receipt.tlog-proof",
            tlog_proof(5, t_path(5, self.leaves[:9]), signed_checkpoint(SEED, 9, t_mth(self.leaves[:9]))),
        )
        missing = os.path.join(self.tmp.name, "nonexistent.sig")
        rc, out, err = run(
            "receipt", "--vkey", self.vkey, "--entry", entry_file, "--proof", proof_file, "--signature", missing
        )
        self.assertEqual(rc, 2, out + err)


# --- export bundles built here ----------------------------------------------


def t_prefix(leaves, start: int) -> list:
    """Hashes of the complete subtrees left of `start`, largest first (one per set bit)."""
    out, pos = [], 0
    for bit in reversed(range(start.bit_length())):
        if start >> bit & 1:
            out.append(t_mth(leaves[pos : pos + (1 << bit)]))
            pos += 1 << bit
    return out


def payload_record(seq: int) -> dict:
    rq_salt, rs_salt, rq, rs = payload_for(seq)
    return {
        "seq": seq,
        "request_salt": rq_salt.hex(),
        "response_salt": rs_salt.hex(),
        "request": base64.b64encode(rq).decode(),
        "response": base64.b64encode(rs).decode(),
    }


def flip(data: bytes, i: int = -1) -> bytes:
    i %= len(data)
    return data[:i] + bytes([data[i] ^ 1]) + data[i + 1 :]


class BundleWriter:
    """Writes contiguous export bundles of self.entries (a LogTestCase's log)."""

    def bundle(
        self, start, end, payloads=None, entries=None, prefix=None, note=None, manifest=None, signatures=None
    ) -> str:
        """Write a bundle directory for seq start..end-1.

        `payloads` is a list of records, `signatures` a list of records or raw
        lines (bytes); None writes no file.
        """
        self.count = getattr(self, "count", 0) + 1
        d = os.path.join(self.tmp.name, f"bundle{self.count}")
        os.mkdir(d)
        m = {
            "format": "govgate-bundle/1",
            "origin": ORIGIN,
            "vkey": self.vkey,
            "from": start,
            "to": end,
            "prefix": [base64.b64encode(x).decode() for x in (t_prefix(self.leaves, start) if prefix is None else prefix)],
            "payloads": payloads is not None,
        }
        m.update(manifest or {})
        files = {
            "manifest.json": json.dumps(m).encode(),
            "entries.jsonl": b"".join(e + b"\n" for e in (self.entries[start:end] if entries is None else entries)),
            "checkpoint.txt": self.checkpoint(size=end) if note is None else note,
        }
        if payloads is not None:
            files["payloads.jsonl"] = b"".join(json.dumps(p).encode() + b"\n" for p in payloads)
        if signatures is not None:
            files["signatures.jsonl"] = b"".join(
                (s if isinstance(s, bytes) else canonical(s)) + b"\n" for s in signatures
            )
        for name, data in files.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        return d


class BundleTests(BundleWriter, LogTestCase):
    def decisions(self, start, end) -> list:
        return [payload_record(seq) for seq in range(max(start, 1), end)]

    def signed(self, start, end, seed=SEED) -> list:
        """signatures.jsonl records for seq start..end-1, as govgate export writes them."""
        return [{"seq": seq, "signature": b64(entry_signature(seed, self.entries[seq]))} for seq in range(start, end)]

    def check(self, d, vkey=None):
        """In-process: (problems, warnings, ok_line)."""
        return gv.verify_bundle(gv.parse_vkey(vkey or self.vkey), d)

    def assertFirstProblem(self, d, prefix: str, contains: str = ""):
        problems, _, _ = self.check(d)
        self.assertTrue(problems, f"accepted, expected FAIL {prefix}")
        self.assertTrue(problems[0].startswith(prefix), problems)
        self.assertIn(contains, problems[0])
        return problems

    def run_bundle(self, d, vkey=None):
        return run("bundle", "--vkey", vkey or self.vkey, d)

    # acceptance

    def test_valid_bundles(self):
        for start, end in ((0, 12), (5, 12), (6, 9), (11, 12), (12, 12), (0, 0)):
            with self.subTest(start=start, end=end):
                rc, out, err = self.run_bundle(self.bundle(start, end))
                self.assertEqual(rc, 0, out + err)
                self.assertEqual(out, f"OK bundle origin={ORIGIN} from={start} to={end} payloads=0 signatures=0 rotations=0\n")

    def test_every_range(self):
        for start in range(0, self.N + 1):
            for end in range(start, self.N + 1):
                with self.subTest(start=start, end=end):
                    problems, warnings, ok = self.check(self.bundle(start, end))
                    self.assertEqual((problems, warnings), ([], []))
                    self.assertEqual(ok, f"OK bundle origin={ORIGIN} from={start} to={end} payloads=0 signatures=0 rotations=0")

    def test_valid_with_payloads(self):
        for start, end in ((0, 12), (5, 9), (7, 12)):
            with self.subTest(start=start, end=end):
                records = [p for p in self.decisions(start, end) if p["seq"] != 7]  # seq 7's payload erased
                rc, out, err = self.run_bundle(self.bundle(start, end, payloads=records))
                self.assertEqual(rc, 0, out + err)
                self.assertEqual(out, f"OK bundle origin={ORIGIN} from={start} to={end} payloads={len(records)} signatures=0 rotations=0\n")

    def test_empty_payloads_file(self):
        rc, out, err = self.run_bundle(self.bundle(0, 12, payloads=[]))
        self.assertEqual(rc, 0, out + err)
        self.assertIn("payloads=0", out)

    def test_vkey_from_file(self):
        vkey_file = self.write("log.vkey", (self.vkey + "\n").encode())
        rc, out, err = self.run_bundle(self.bundle(5, 12), vkey="@" + vkey_file)
        self.assertEqual(rc, 0, out + err)

    # entries

    def test_changed_entry_byte(self):
        for start, end in ((0, 12), (1, 12), (5, 12), (6, 9), (11, 12)):
            for k in range(start, end):
                with self.subTest(start=start, end=end, seq=k):
                    lines = self.entries[start:end]
                    i = k - start
                    lines[i] = lines[i].replace(b":%02d.000Z" % k, b":59.000Z")
                    self.assertNotEqual(lines[i], self.entries[k])
                    d = self.bundle(start, end, entries=lines)
                    if k == end - 1:
                        # Only the root covers the last entry: with one checkpoint, the change
                        # is proven to lie in the range (or a prefix hash), no nearer.
                        self.assertFirstProblem(d, "root:", f"changed within seqs {start}..{end - 1}")
                    else:
                        self.assertFirstProblem(d, f"seq {k}:")

    def test_changed_entry_byte_command(self):
        lines = self.entries[5:12]
        lines[3] = lines[3].replace(b'"caller":"anonymous"', b'"caller":"anonymoux"')
        self.assertNotEqual(lines[3], self.entries[8])
        rc, out, err = self.run_bundle(self.bundle(5, 12, entries=lines))
        self.assertFirstFail((rc, out, err), "seq 8:")
        self.assertNotIn("OK", out)

    def test_non_canonical_entry(self):
        lines = self.entries[5:12]
        lines[2] = lines[2].replace(b',"kind"', b', "kind"')
        self.assertFirstProblem(self.bundle(5, 12, entries=lines), "seq 7: line 3:", "canonical")

    def test_first_prev_hash_taken_as_given_only_after_zero(self):
        # from 0: the first prev_hash must be zeros (from > 0 takes it as given: test_every_range).
        first = json.loads(self.entries[0])
        first["prev_hash"] = "1" * 64
        lines = [canonical(first)] + self.entries[1:]
        self.assertFirstProblem(self.bundle(0, 12, entries=lines), "seq 0:")

    def test_missing_extra_and_shifted_entries(self):
        self.assertFirstProblem(self.bundle(5, 12, entries=self.entries[5:11]), "seq 11:", "missing")
        self.assertFirstProblem(self.bundle(5, 11, entries=self.entries[5:12]), "seq 11: line 7:", "beyond")
        self.assertFirstProblem(self.bundle(5, 12, entries=self.entries[4:11]), "seq 5: line 1 holds seq 4")
        lines = self.entries[5:12]
        del lines[2]
        self.assertFirstProblem(self.bundle(5, 12, entries=lines), "seq 7:")

    def test_origin_of_entries(self):
        name = "govgate.example/other"
        d = self.bundle(0, 12, note=signed_checkpoint(SEED, 12, t_mth(self.leaves), origin=name), manifest={"origin": name})
        problems, _, _ = self.check(d, vkey=vkey_for(SEED, name))
        self.assertTrue(problems[0].startswith("seq 0:") and "origin" in problems[0], problems)

    # prefix and root

    def test_wrong_prefix_hash(self):
        for start, end in ((5, 12), (6, 9), (7, 12), (11, 12), (1, 3)):
            good = t_prefix(self.leaves, start)
            for i in range(len(good)):
                with self.subTest(start=start, end=end, hash=i):
                    bad = list(good)
                    bad[i] = flip(bad[i])
                    self.assertFirstProblem(self.bundle(start, end, prefix=bad), "root:", "Merkle root")
        rc, out, err = self.run_bundle(self.bundle(6, 12, prefix=[flip(h) for h in t_prefix(self.leaves, 6)]))
        self.assertFirstFail((rc, out, err), "root:")

    def test_prefix_only_bundle(self):
        bad = t_prefix(self.leaves, 7)
        bad[1] = flip(bad[1])
        self.assertFirstProblem(self.bundle(7, 7, prefix=bad), "prefix:")

    def test_prefix_out_of_order_or_wrong_count(self):
        good = t_prefix(self.leaves, 7)  # subtrees of 4, 2 and 1 leaves
        self.assertFirstProblem(self.bundle(7, 12, prefix=good[::-1]), "root:")
        self.assertFirstProblem(self.bundle(7, 12, prefix=good[:2]), "manifest:", "needs 3")
        self.assertFirstProblem(self.bundle(7, 12, prefix=good + [good[0]]), "manifest:", "needs 3")
        self.assertFirstProblem(self.bundle(0, 12, prefix=[good[0]]), "manifest:", "needs 0")
        # The subtree hashes of another split (4+3 instead of 4+2+1) do not pass either.
        self.assertFirstProblem(self.bundle(7, 12, prefix=[good[0], t_mth(self.leaves[4:7])]), "manifest:")
        d = self.bundle(7, 12, manifest={"prefix": ["not base64!"]})
        self.assertFirstProblem(d, "manifest:", "base64")

    # checkpoint

    def test_checkpoint_from_another_key(self):
        rc, out, err = self.run_bundle(self.bundle(5, 12, note=self.checkpoint(size=12, seed=OTHER_SEED)))
        self.assertFirstFail((rc, out, err), "checkpoint:")
        self.assertIn("no signature by", out)

    def test_vkey_of_another_key(self):
        # The manifest's vkey is the right one, but only the given vkey counts.
        rc, out, err = self.run_bundle(self.bundle(5, 12), vkey=vkey_for(OTHER_SEED))
        self.assertFirstFail((rc, out, err), "checkpoint:")

    def test_checkpoint_size_is_not_to(self):
        rc, out, err = self.run_bundle(self.bundle(5, 12, note=self.checkpoint(size=9)))
        self.assertFirstFail((rc, out, err), "checkpoint: size 9 is not the bundle's to 12")
        # A manifest that claims a shorter range than the checkpoint covers.
        d = self.bundle(5, 9, note=self.checkpoint(size=12))
        self.assertFirstProblem(d, "checkpoint: size 12 is not the bundle's to 9")

    def test_checkpoint_tampered(self):
        note = self.checkpoint(size=12).replace(b"\n12\n", b"\n11\n")
        self.assertFirstProblem(self.bundle(5, 11, note=note), "checkpoint:", "does not verify")

    # manifest

    def test_manifest_vkey_only_compared(self):
        rc, out, err = self.run_bundle(self.bundle(5, 12))
        self.assertNotIn("warning", out)
        for other in (vkey_for(OTHER_SEED), None, "garbage"):
            with self.subTest(other):
                rc, out, err = self.run_bundle(self.bundle(5, 12, manifest={"vkey": other}))
                self.assertEqual(rc, 0, out + err)
                self.assertTrue(out.startswith("warning: manifest: vkey"), out)
                self.assertIn(f"OK bundle origin={ORIGIN} from=5 to=12 payloads=0 signatures=0", out)

    def test_manifest_problems(self):
        for changes, expect in (
            ({"format": "govgate-bundle/9"}, "format"),
            ({"origin": "govgate.example/other"}, "origin"),
            ({"from": 13}, "larger than to"),
            ({"from": -1}, "from"),
            ({"to": "12"}, "to"),
            ({"payloads": "yes"}, "payloads"),
        ):
            with self.subTest(changes):
                self.assertFirstProblem(self.bundle(5, 12, manifest=changes), "manifest:", expect)

    def test_missing_files(self):
        for name, expect in (("manifest.json", "manifest:"), ("entries.jsonl", "entries:"), ("checkpoint.txt", "checkpoint:")):
            with self.subTest(name):
                d = self.bundle(5, 12)
                os.remove(os.path.join(d, name))
                rc, out, err = self.run_bundle(d)
                self.assertFirstFail((rc, out, err), expect)
                self.assertIn("missing", fail_lines(out)[0])

    # payloads

    def test_payload_altered(self):
        def alter(record, member):
            raw = base64.b64decode(record[member]) if member in ("request", "response") else bytes.fromhex(record[member])
            changed = flip(raw, 10)
            record[member] = base64.b64encode(changed).decode() if member in ("request", "response") else changed.hex()
            return record

        cases = {
            "request bytes": lambda r: alter(r, "request"),
            "response bytes": lambda r: alter(r, "response"),
            "request salt": lambda r: alter(r, "request_salt"),
            "response salt": lambda r: alter(r, "response_salt"),
            "salts swapped": lambda r: {**r, "request_salt": r["response_salt"], "response_salt": r["request_salt"]},
            "request one byte short": lambda r: {**r, "request": base64.b64encode(base64.b64decode(r["request"])[:-1]).decode()},
            "response of another seq": lambda r: {**r, "response": payload_record(9)["response"]},
        }
        for start in (0, 5):
            for what, change in cases.items():
                with self.subTest(start=start, change=what):
                    records = self.decisions(start, 12)
                    k = next(i for i, r in enumerate(records) if r["seq"] == 8)
                    records[k] = change(dict(records[k]))
                    problems, _, _ = self.check(self.bundle(start, 12, payloads=records))
                    self.assertEqual(len(problems), 1, problems)
                    self.assertTrue(problems[0].startswith("payload seq 8:"), problems)
                    self.assertIn("commitment", problems[0])
        records = self.decisions(5, 12)
        records[0] = dict(records[0], request=base64.b64encode(b"x" * 84).decode())
        rc, out, err = self.run_bundle(self.bundle(5, 12, payloads=records))
        self.assertFirstFail((rc, out, err), "payload seq 5:")
        self.assertEqual(len(fail_lines(out)), 1, out)

    def test_payload_captured_count(self):
        # Right commitment, wrong byte count: the entry says a different `captured`.
        lines = self.entries[5:12]
        lines[1] = lines[1].replace(b'"captured":84', b'"captured":83')
        problems, _, _ = self.check(self.bundle(5, 12, payloads=self.decisions(5, 12), entries=lines))
        self.assertTrue(any(p.startswith("payload seq 6:") and "captured" in p for p in problems), problems)

    def test_payload_for_non_decision_entry(self):
        records = [dict(payload_record(1), seq=0)] + self.decisions(0, 12)
        rc, out, err = self.run_bundle(self.bundle(0, 12, payloads=records))
        self.assertFirstFail((rc, out, err), "payload seq 0:")
        self.assertIn("not a decision", out)
        self.assertEqual(len(fail_lines(out)), 1, out)

    def test_payload_outside_range(self):
        for seq in (3, 4, 9, 12, 40):
            with self.subTest(seq=seq):
                records = self.decisions(5, 9) + [payload_record(seq)]
                problems, _, _ = self.check(self.bundle(5, 9, payloads=records))
                self.assertEqual(len(problems), 1, problems)
                self.assertTrue(problems[0].startswith(f"payload seq {seq}:"), problems)
                self.assertIn("outside", problems[0])

    def test_payload_malformed_or_repeated(self):
        records = self.decisions(5, 9)
        for bad, expect in (
            ({**records[0], "request_salt": records[0]["request_salt"][:-2]}, "payload line 1:"),
            ({**records[0], "request": records[0]["request"][:-1]}, "payload line 1:"),
            ({**records[0], "response": records[0]["response"] + "\n"}, "payload line 1:"),
            ({k: v for k, v in records[0].items() if k != "response"}, "payload line 1:"),
        ):
            with self.subTest(bad):
                self.assertFirstProblem(self.bundle(5, 9, payloads=[bad] + records[1:]), expect)
        self.assertFirstProblem(self.bundle(5, 9, payloads=records + [records[1]]), "payload seq 6:", "repeats")

    def test_payloads_flag_and_file_disagree(self):
        d = self.bundle(5, 12, manifest={"payloads": True})
        self.assertFirstProblem(d, "payloads:", "missing")
        d = self.bundle(5, 12, payloads=self.decisions(5, 12), manifest={"payloads": False})
        self.assertFirstProblem(d, "payloads:", "present")

    # per-entry signatures (signatures.jsonl)

    def test_valid_signatures(self):
        for start, end in ((0, 12), (5, 12), (6, 9), (11, 12)):
            with self.subTest(start=start, end=end):
                rc, out, err = self.run_bundle(self.bundle(start, end, signatures=self.signed(start, end)))
                self.assertEqual(rc, 0, out + err)
                self.assertEqual(
                    out, f"OK bundle origin={ORIGIN} from={start} to={end} payloads=0 signatures={end - start} rotations=0\n"
                )
        # Entries signed before the mode was on have no line; the file may be empty or in any order.
        for records, count in ((self.signed(8, 12), 4), ([], 0), (self.signed(5, 12)[::-1], 7)):
            with self.subTest(count=count):
                problems, _, ok = self.check(self.bundle(5, 12, signatures=records))
                self.assertEqual(problems, [])
                self.assertTrue(ok.endswith(f" signatures={count} rotations=0"), ok)
        records = self.decisions(5, 12)
        rc, out, err = self.run_bundle(self.bundle(5, 12, payloads=records, signatures=self.signed(5, 12)))
        self.assertEqual(rc, 0, out + err)
        self.assertIn(f"payloads={len(records)} signatures=7", out)

    def test_bad_signature(self):
        good = entry_signature(SEED, self.entries[8])
        for what, sig in (
            ("moved from seq 7", entry_signature(SEED, self.entries[7])),
            ("moved from seq 9", entry_signature(SEED, self.entries[9])),
            ("first byte flipped", flip(good, 0)),
            ("middle byte flipped", flip(good, 40)),
            ("last byte flipped", flip(good)),
            ("signed without the context line", entry_signature(SEED, self.entries[8], context=False)),
            ("signed by another key", entry_signature(OTHER_SEED, self.entries[8])),
        ):
            with self.subTest(what):
                records = self.signed(5, 12)
                records[3] = {"seq": 8, "signature": b64(sig)}
                problems, _, _ = self.check(self.bundle(5, 12, signatures=records))
                self.assertEqual(problems, ["seq 8: per-entry signature does not verify (signatures.jsonl line 4)"])
        records = self.signed(5, 12)
        records[3]["signature"] = b64(flip(good))
        rc, out, err = self.run_bundle(self.bundle(5, 12, signatures=records))
        self.assertEqual(rc, 1, out + err)
        self.assertEqual(fail_lines(out), ["FAIL seq 8: per-entry signature does not verify (signatures.jsonl line 4)"])
        self.assertNotIn("OK", out)

    def test_signatures_swapped_between_seqs(self):
        records = self.signed(5, 12)
        records[1]["signature"], records[2]["signature"] = records[2]["signature"], records[1]["signature"]
        problems, _, _ = self.check(self.bundle(5, 12, signatures=records))
        self.assertEqual(
            problems,
            [
                "seq 6: per-entry signature does not verify (signatures.jsonl line 2)",
                "seq 7: per-entry signature does not verify (signatures.jsonl line 3)",
            ],
        )

    def test_whole_bundle_under_another_key(self):
        # Signatures by another key fail even when everything else is by the right key.
        problems, _, _ = self.check(self.bundle(5, 12, signatures=self.signed(5, 12, seed=OTHER_SEED)))
        self.assertEqual(len(problems), 7, problems)
        self.assertTrue(all("per-entry signature does not verify" in p for p in problems), problems)

    def test_signature_of_an_altered_entry(self):
        lines = self.entries[5:12]
        lines[2] = lines[2].replace(b'"caller":"alice"', b'"caller":"alicf"')
        self.assertNotEqual(lines[2], self.entries[7])
        problems, _, _ = self.check(self.bundle(5, 12, entries=lines, signatures=self.signed(5, 12)))
        self.assertIn("seq 7: per-entry signature does not verify (signatures.jsonl line 3)", problems)

    def test_signature_outside_range(self):
        for seq in (0, 4, 9, 12, 40):
            with self.subTest(seq=seq):
                extra = {"seq": seq, "signature": b64(entry_signature(SEED, self.entries[min(seq, self.N - 1)]))}
                problems, _, _ = self.check(self.bundle(5, 9, signatures=self.signed(5, 9) + [extra]))
                self.assertEqual(problems, [f"signature seq {seq}: line 5: outside the bundle's range seq 5..8"])
        extra = {"seq": 7, "signature": b64(entry_signature(SEED, self.entries[7]))}
        problems, _, _ = self.check(self.bundle(7, 7, signatures=[extra]))
        self.assertEqual(problems, ["signature seq 7: line 1: the bundle holds no entries"])
        rc, out, err = self.run_bundle(self.bundle(5, 9, signatures=self.signed(5, 9) + [extra | {"seq": 9}]))
        self.assertFirstFail((rc, out, err), "signature seq 9:")

    def test_signature_repeated(self):
        records = self.signed(5, 12)
        for what, repeat in (
            ("same signature", dict(records[2])),
            ("other signature", {"seq": 7, "signature": records[3]["signature"]}),
        ):
            with self.subTest(what):
                problems, _, _ = self.check(self.bundle(5, 12, signatures=records + [repeat]))
                self.assertEqual(problems, ["signature seq 7: line 8 repeats the signature of line 3"])

    def test_signature_line_malformed(self):
        good = self.signed(5, 9)
        sig = good[1]["signature"]
        raw = base64.b64decode(sig)
        for what, line in (
            ("not base64", {"seq": 6, "signature": "not base64!"}),
            ("padding missing", {"seq": 6, "signature": sig.rstrip("=")}),
            ("non-canonical base64", {"seq": 6, "signature": sig[:-3] + noncanonical_last(sig[-3]) + "=="}),
            ("line break inside", {"seq": 6, "signature": sig[:40] + "\n" + sig[40:]}),
            ("63 bytes", {"seq": 6, "signature": b64(raw[:63])}),
            ("65 bytes", {"seq": 6, "signature": b64(raw + b"\0")}),
            ("hex instead of base64", {"seq": 6, "signature": raw.hex()}),
            ("signature not a string", {"seq": 6, "signature": list(raw)}),
            ("signature missing", {"seq": 6}),
            ("seq missing", {"signature": sig}),
            ("seq negative", {"seq": -6, "signature": sig}),
            ("seq a string", {"seq": "6", "signature": sig}),
            ("seq fractional", {"seq": 6.5, "signature": sig}),
            ("seq written with a fraction", b'{"seq":6.0,"signature":"%s"}' % sig.encode()),
            ("seq written with an exponent", b'{"seq":6e0,"signature":"%s"}' % sig.encode()),
            ("seq beyond 64 bits", b'{"seq":18446744073709551616,"signature":"%s"}' % sig.encode()),
            ("not an object", [6, sig]),
            ("not JSON", b"seq 6 " + sig.encode()),
            ("empty line", b""),
            ("duplicate member", b'{"seq":6,"seq":6,"signature":"%s"}' % sig.encode()),
        ):
            with self.subTest(what):
                records = [good[0], line] + good[2:]
                problems, _, _ = self.check(self.bundle(5, 9, signatures=records))
                self.assertEqual(len(problems), 1, problems)
                self.assertTrue(problems[0].startswith("signature line 2: "), problems)
        rc, out, err = self.run_bundle(self.bundle(5, 9, signatures=[good[0], {"seq": 6, "signature": "not base64!"}]))
        self.assertFirstFail((rc, out, err), "signature line 2:")
        self.assertIn("base64", out)

    def test_signature_for_a_missing_entry(self):
        # The entry is missing (reported as such); its signature is not counted as checked.
        d = self.bundle(5, 12, entries=self.entries[5:10], signatures=self.signed(5, 12))
        problems, _, _ = self.check(d)
        self.assertEqual(
            problems, ["seq 10: missing: the bundle covers seq 5..11 but entries.jsonl ends after 5 lines"]
        )

    def test_usage(self):
        d = self.bundle(5, 12)
        for args in (
            ("bundle", "--vkey", self.vkey),
            ("bundle", d),
            ("bundle", "--vkey", "not-a-vkey", d),
            ("bundle", "--vkey", self.vkey, os.path.join(self.tmp.name, "nonexistent")),
            ("bundle", "--vkey", self.vkey, os.path.join(d, "manifest.json")),
            ("bundle", "--vkey", "@" + os.path.join(self.tmp.name, "nonexistent.vkey"), d),
            ("bundle", "--jobs", "-1", "--vkey", self.vkey, d),
            ("bundle", "--jobs", "two", "--vkey", self.vkey, d),
        ):
            with self.subTest(args):
                rc, out, err = run(*args)
                self.assertEqual(rc, 2, out + err)

    def test_jobs_print_the_same(self):
        lines = self.entries[0:12]
        lines[5] = lines[5].replace(b'"caller":"alice"', b'"caller":"alicf"')
        payloads = [p for p in self.decisions(0, 12) if p["seq"] != 9]
        payloads[2]["request"] = b64(b"x")
        for d in (self.bundle(0, 12), self.bundle(0, 12, entries=lines, payloads=payloads, signatures=self.signed(0, 11))):
            with self.subTest(d):
                once = run("bundle", "--vkey", self.vkey, d)
                self.assertEqual(run("bundle", "--jobs", "2", "--vkey", self.vkey, d), once)
                self.assertEqual(run("bundle", "--jobs", "0", "--vkey", self.vkey, d), once)


# --- key rotation (docs/audit-format.md section 11) -------------------------


class RotationTests(LogTestCase):
    """A log whose seq 6 rotates from the vectors' key (SEED) to OTHER_SEED.

    Batches end at sizes 3, 6, 7 (the key_rotated entry alone in its batch,
    under the old key), 10 and 12 (under the new key).
    """

    ROT = 6
    BATCHES = (3, 6, 7, 10, 12)

    def setUp(self):
        super().setUp()
        self.old_vkey, self.new_vkey = vkey_for(SEED), vkey_for(OTHER_SEED)
        self.use_log(build_entries(self.N, rotations={self.ROT: (self.old_vkey, self.new_vkey)}))

    def use_log(self, entries):
        self.entries = entries
        self.leaves = [t_leaf(e) for e in entries]

    def checkpoint_seed(self, size: int) -> bytes:
        """The rule: the rotation's own checkpoint (size ROT+1) and earlier ones by the old key, later by the new."""
        return SEED if size <= self.ROT + 1 else OTHER_SEED

    def entry_seed(self, seq: int) -> bytes:
        """Per-entry signatures: the key in force for the batch; the key_rotated entry itself under the old key."""
        return SEED if seq <= self.ROT else OTHER_SEED

    def rule_checkpoint(self, size: int) -> bytes:
        return self.checkpoint(size=size, seed=self.checkpoint_seed(size))

    def log_args(self, lines, note, *extra):
        entries = self.write("entries.jsonl", b"".join(line + b"\n" for line in lines))
        cp = self.write("checkpoint", note)
        return ("log", "--vkey", self.vkey, "--entries", entries, "--checkpoint", cp, *extra)

    def check_log(self, size=None, note=None, vkey=None, expect_final=None, lines=None):
        """In-process: (problems, notes, ok_line)."""
        size = self.N if size is None else size
        return gv.verify_log(
            gv.parse_vkey(vkey or self.vkey),
            b"".join(line + b"\n" for line in (self.entries if lines is None else lines)),
            self.rule_checkpoint(size) if note is None else note,
            gv.parse_vkey(expect_final) if expect_final else None,
        )

    # log: acceptance

    def test_valid_log_with_rotation(self):
        rc, out, err = run(*self.log_args(self.entries, self.rule_checkpoint(self.N)))
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(out, f"OK log origin={ORIGIN} size={self.N} entries={self.N} rotations=1\n")
        rc, out, err = run(*self.log_args(self.entries, self.rule_checkpoint(self.N), "--expect-final", self.new_vkey))
        self.assertEqual(rc, 0, out + err)
        vkey_file = self.write("new.vkey", (self.new_vkey + "\n").encode())
        rc, out, err = run(*self.log_args(self.entries, self.rule_checkpoint(self.N), "--expect-final", "@" + vkey_file))
        self.assertEqual(rc, 0, out + err)

    def test_every_batch_checkpoint(self):
        for size in self.BATCHES:
            with self.subTest(size=size):
                lines = self.entries[:size]
                final = self.new_vkey if size > self.ROT else self.old_vkey
                problems, notes, ok = self.check_log(size, lines=lines, expect_final=final)
                self.assertEqual((problems, notes), ([], []))
                self.assertEqual(ok, f"OK log origin={ORIGIN} size={size} entries={size} rotations={int(size > self.ROT)}")

    def test_rotation_not_covered_by_the_checkpoint(self):
        # Entries after the checkpoint are chain-checked; their rotation is not counted.
        rc, out, err = run(*self.log_args(self.entries, self.rule_checkpoint(6), "--expect-final", self.old_vkey))
        self.assertEqual(rc, 0, out + err)
        self.assertIn("note: seq 6: key_rotated is not covered by this checkpoint", out)
        self.assertIn(f"OK log origin={ORIGIN} size=6 entries={self.N} rotations=0", out)

    def test_two_rotations_the_last_one_last(self):
        # SEED -> OTHER at seq 6, OTHER -> THIRD at seq 9, the log's last entry:
        # the latest checkpoint (size 10) is still OTHER's, the final key THIRD's.
        third = vkey_for(THIRD_SEED)
        self.use_log(build_entries(10, rotations={6: (self.old_vkey, self.new_vkey), 9: (self.new_vkey, third)}))
        note = self.checkpoint(size=10, seed=OTHER_SEED)
        rc, out, err = run(*self.log_args(self.entries, note, "--expect-final", third))
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(out, f"OK log origin={ORIGIN} size=10 entries=10 rotations=2\n")
        for size, seed in ((6, SEED), (7, SEED), (8, OTHER_SEED), (9, OTHER_SEED)):
            with self.subTest(size=size):
                problems, _, ok = self.check_log(size, note=self.checkpoint(size=size, seed=seed))
                self.assertEqual(problems, [])
        problems, _, _ = self.check_log(10, note=self.checkpoint(size=10, seed=THIRD_SEED))
        self.assertTrue(problems and problems[0].startswith("checkpoint:"), problems)
        self.assertIn("old_vkey of the key_rotated at seq 9", problems[0])
        problems, _, _ = self.check_log(10, note=note, expect_final=self.new_vkey)
        self.assertEqual(len(problems), 1, problems)
        self.assertTrue(problems[0].startswith("keys: the rotations end at"), problems)

    # log: rejection

    def test_checkpoint_after_rotation_by_old_key(self):
        for size in (8, 10, 12):
            with self.subTest(size=size):
                problems, _, _ = self.check_log(size, note=self.checkpoint(size=size, seed=SEED))
                self.assertTrue(problems, "accepted")
                self.assertTrue(problems[0].startswith("checkpoint: no signature by"), problems)
                label = gv.parse_vkey(self.new_vkey).label()
                self.assertIn(label, problems[0])
                self.assertIn("new_vkey of the key_rotated at seq 6", problems[0])
                self.assertIn(f"it is signed by {gv.parse_vkey(self.old_vkey).label()} instead", problems[0])
        rc, out, err = run(*self.log_args(self.entries, self.checkpoint(size=12, seed=SEED)))
        self.assertFirstFail((rc, out, err), "checkpoint:")
        self.assertNotIn("OK", out)

    def test_rotation_checkpoint_by_new_key(self):
        note = self.checkpoint(size=self.ROT + 1, seed=OTHER_SEED)
        rc, out, err = run(*self.log_args(self.entries[: self.ROT + 1], note))
        self.assertFirstFail((rc, out, err), "checkpoint:")
        self.assertIn("old_vkey of the key_rotated at seq 6", out)
        # Also when the file holds later entries.
        problems, _, _ = self.check_log(self.ROT + 1, note=note)
        self.assertTrue(problems[0].startswith("checkpoint:"), problems)

    def test_checkpoint_before_rotation_by_new_key(self):
        problems, _, _ = self.check_log(5, note=self.checkpoint(size=5, seed=OTHER_SEED))
        self.assertTrue(problems[0].startswith("checkpoint:"), problems)

    def test_old_vkey_not_in_force(self):
        third = vkey_for(THIRD_SEED)
        self.use_log(build_entries(self.N, rotations={self.ROT: (third, self.new_vkey)}))
        rc, out, err = run(*self.log_args(self.entries, self.rule_checkpoint(self.N)))
        self.assertEqual(rc, 1, out + err)
        fails = fail_lines(out)
        self.assertEqual(len(fails), 1, out)
        self.assertTrue(fails[0].startswith("FAIL seq 6: key_rotated: old_vkey"), out)
        self.assertIn("is not the key in force", fails[0])
        # The rotation's own checkpoint is signed by the key the entry names: it does not help.
        note = self.checkpoint(size=self.ROT + 1, seed=THIRD_SEED)
        problems, _, _ = self.check_log(self.ROT + 1, note=note, lines=self.entries[: self.ROT + 1])
        self.assertEqual(len(problems), 1, problems)
        self.assertTrue(problems[0].startswith("seq 6: key_rotated: old_vkey"), problems)

    def test_anchor_is_not_the_first_key(self):
        # The current key given as --vkey: the first rotation's old_vkey is not it.
        problems, _, _ = self.check_log(vkey=self.new_vkey)
        self.assertEqual(len(problems), 1, problems)
        self.assertTrue(problems[0].startswith("seq 6: key_rotated: old_vkey"), problems)

    def test_malformed_rotation(self):
        good_text = self.new_vkey
        name, kid, key = good_text.split("+", 2)
        for what, old, new in (
            ("new_vkey missing", self.old_vkey, None),
            ("old_vkey missing", None, self.new_vkey),
            ("new_vkey garbage", self.old_vkey, "garbage"),
            ("new_vkey with a wrong key ID", self.old_vkey, f"{name}+00000000+{key}"),
            ("new_vkey upper-case key ID", self.old_vkey, f"{name}+{kid.upper()}+{key}"),
            ("new_vkey of another log", self.old_vkey, vkey_for(OTHER_SEED, "govgate.example/other")),
        ):
            with self.subTest(what):
                if what == "new_vkey upper-case key ID" and kid == kid.upper():
                    continue
                self.use_log(build_entries(self.N, rotations={self.ROT: (old, new)}))
                problems, _, _ = self.check_log(size=self.ROT + 1, lines=self.entries)
                self.assertTrue(problems, "accepted")
                self.assertTrue(problems[0].startswith("seq 6: key_rotated:"), problems)

    def test_expect_final_mismatch(self):
        for size, wrong in ((self.N, self.old_vkey), (self.N, vkey_for(THIRD_SEED)), (self.ROT, self.new_vkey)):
            with self.subTest(size=size):
                rc, out, err = run(
                    *self.log_args(self.entries[:size], self.rule_checkpoint(size), "--expect-final", wrong)
                )
                self.assertEqual(rc, 1, out + err)
                self.assertEqual(len(fail_lines(out)), 1, out)
                self.assertTrue(fail_lines(out)[0].startswith("FAIL keys: the rotations end at"), out)
                self.assertIn(gv.parse_vkey(wrong).label(), out)
        for bad in ("garbage", vkey_for(OTHER_SEED, "govgate.example/other")):
            with self.subTest(bad=bad):
                rc, out, err = run(*self.log_args(self.entries, self.rule_checkpoint(self.N), "--expect-final", bad))
                self.assertEqual(rc, 2, out + err)

    # bundles

    bundle = BundleTests.bundle

    def signed(self, start, end) -> list:
        return [
            {"seq": seq, "signature": b64(entry_signature(self.entry_seed(seq), self.entries[seq]))}
            for seq in range(start, end)
        ]

    def run_bundle(self, d, *extra):
        return run("bundle", "--vkey", self.vkey, *extra, d)

    def check_bundle(self, d, current=None):
        return gv.verify_bundle(gv.parse_vkey(self.vkey), d, gv.parse_vkey(current) if current else None)

    def test_bundle_from_zero(self):
        for end in (7, 10, 12):
            with self.subTest(end=end):
                d = self.bundle(0, end, note=self.rule_checkpoint(end), signatures=self.signed(0, end),
                                manifest={"vkey": self.new_vkey})
                rc, out, err = self.run_bundle(d)
                self.assertEqual(rc, 0, out + err)
                self.assertEqual(
                    out, f"OK bundle origin={ORIGIN} from=0 to={end} payloads=0 signatures={end} rotations=1\n"
                )

    def test_bundle_across_the_rotation(self):
        # from > 0 but before the rotation: the key in force at from is still the first one.
        d = self.bundle(3, 12, note=self.rule_checkpoint(12), signatures=self.signed(3, 12))
        rc, out, err = self.run_bundle(d)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("signatures=9 rotations=1", out)

    def test_bundle_after_the_rotation(self):
        for start in (7, 10):
            with self.subTest(start=start):
                d = self.bundle(start, 12, note=self.rule_checkpoint(12), signatures=self.signed(start, 12))
                rc, out, err = self.run_bundle(d, "--current-vkey", self.new_vkey)
                self.assertEqual(rc, 0, out + err)
                self.assertEqual(
                    out,
                    f"OK bundle origin={ORIGIN} from={start} to=12 payloads=0 signatures={12 - start} rotations=0\n",
                )
                # Without --current-vkey the first key is taken to be in force at from.
                rc, out, err = self.run_bundle(d)
                self.assertFirstFail((rc, out, err), "checkpoint:")
                self.assertIn("--current-vkey", fail_lines(out)[0])
                self.assertIn("FAIL seq 11: per-entry signature does not verify", out)
        # The rotation's own batch, from 6: the key in force at 6 is still the old one.
        d = self.bundle(6, 7, note=self.rule_checkpoint(7), signatures=self.signed(6, 7))
        rc, out, err = self.run_bundle(d, "--current-vkey", self.old_vkey)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("rotations=1", out)

    def test_bundle_rejections(self):
        # A checkpoint after the rotation signed by the old key.
        problems, _, _ = self.check_bundle(self.bundle(0, 12, note=self.checkpoint(size=12, seed=SEED)))
        self.assertTrue(problems[0].startswith("checkpoint:") and "new_vkey of the key_rotated at seq 6" in problems[0])
        # The rotation's own checkpoint signed by the new key.
        problems, _, _ = self.check_bundle(self.bundle(0, 7, note=self.checkpoint(size=7, seed=OTHER_SEED)))
        self.assertTrue(problems[0].startswith("checkpoint:") and "old_vkey of the key_rotated at seq 6" in problems[0])
        # The rotation's entry signed by the new key, and the next one by the old key.
        records = self.signed(0, 12)
        records[6]["signature"] = b64(entry_signature(OTHER_SEED, self.entries[6]))
        records[7]["signature"] = b64(entry_signature(SEED, self.entries[7]))
        problems, _, _ = self.check_bundle(self.bundle(0, 12, note=self.rule_checkpoint(12), signatures=records))
        self.assertEqual(
            problems,
            [
                "seq 6: per-entry signature does not verify (signatures.jsonl line 7)",
                "seq 7: per-entry signature does not verify (signatures.jsonl line 8)",
            ],
        )
        # A --current-vkey after the rotation, for a bundle that starts before it.
        problems, _, _ = self.check_bundle(self.bundle(3, 12, note=self.rule_checkpoint(12)), current=self.new_vkey)
        self.assertTrue(problems[0].startswith("seq 6: key_rotated: old_vkey"), problems)
        # From 0 the key in force is the first key: another --current-vkey is refused.
        rc, out, err = self.run_bundle(self.bundle(0, 12, note=self.rule_checkpoint(12)), "--current-vkey", self.new_vkey)
        self.assertFirstFail((rc, out, err), "keys: from is 0")
        # An old_vkey that is not the key in force.
        self.use_log(build_entries(self.N, rotations={self.ROT: (vkey_for(THIRD_SEED), self.new_vkey)}))
        problems, _, _ = self.check_bundle(self.bundle(0, 12, note=self.rule_checkpoint(12)))
        self.assertEqual(len(problems), 1, problems)
        self.assertTrue(problems[0].startswith("seq 6: key_rotated: old_vkey"), problems)

    def test_bundle_usage(self):
        d = self.bundle(7, 12, note=self.rule_checkpoint(12))
        for bad in ("garbage", vkey_for(OTHER_SEED, "govgate.example/other")):
            with self.subTest(bad):
                rc, out, err = self.run_bundle(d, "--current-vkey", bad)
                self.assertEqual(rc, 2, out + err)


def rechain(objects) -> list:
    """Canonical bytes of entry objects, their prev_hash members set to the BLAKE3 chain."""
    out, prev = [], "0" * 64
    for obj in objects:
        obj = dict(obj, prev_hash=prev)
        out.append(canonical(obj))
        prev = blake3.blake3(out[-1]).hexdigest()
    return out


class SparseTestCase(LogTestCase):
    """Sparse bundles (docs/audit-format.md section 8.2) over a log whose odd
    decisions are of model "fraud" and even ones of "credit-scoring"; the
    checkpoint has size 12, the whole log."""

    def setUp(self):
        super().setUp()
        objects = [json.loads(e) for e in build_entries(self.N)]
        for obj in objects:
            if obj["kind"] == "decision" and obj["seq"] % 2:
                obj["model"] = "fraud"
        self.entries = rechain(objects)
        self.leaves = [t_leaf(e) for e in self.entries]

    def sparse(self, seqs, start, end, model=None, size=None, payloads=False, signatures=False, note=None, drop=(), edit=None, manifest=None, proofs=None) -> str:
        """A sparse bundle holding `seqs` with their proofs into the checkpoint of `size`.

        `drop` removes those seqs' entry lines only (their proofs stay);
        `edit` maps a seq to replacement entry bytes; `signatures` is True
        (sign every seq) or the seqs to sign.
        """
        size = self.N if size is None else size
        self.count = getattr(self, "count", 0) + 1
        d = os.path.join(self.tmp.name, f"sparse{self.count}")
        os.mkdir(d)
        m = {
            "format": "govgate-bundle-sparse/1",
            "origin": ORIGIN,
            "vkey": self.vkey,
            "from": start,
            "to": end,
            "size": size,
            "filter": {"model": model, "since": None, "until": None},
            "payloads": payloads,
        }
        m.update(manifest or {})
        edit = edit or {}
        lines = [edit.get(s, self.entries[s]) for s in seqs if s not in drop]
        if proofs is None:
            proofs = [{"seq": s, "path": [b64(p) for p in t_path(s, self.leaves[:size])]} for s in seqs]
        files = {
            "manifest.json": json.dumps(m).encode(),
            "entries.jsonl": b"".join(e + b"\n" for e in lines),
            "proofs.jsonl": b"".join(canonical(p) + b"\n" for p in proofs),
            "checkpoint.txt": self.checkpoint(size=size) if note is None else note,
        }
        if payloads:
            files["payloads.jsonl"] = b"".join(
                json.dumps(payload_record(s)).encode() + b"\n" for s in seqs if s > 0
            )
        if signatures:
            signed = seqs if signatures is True else signatures
            files["signatures.jsonl"] = b"".join(
                canonical({"seq": s, "signature": b64(entry_signature(SEED, self.entries[s]))}) + b"\n" for s in signed
            )
        for name, data in files.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        return d

    def problems(self, d, vkey=None):
        return gv.verify_bundle(gv.parse_vkey(vkey or self.vkey), d)[0]

    def assertFirst(self, d, prefix, contains=""):
        found = self.problems(d)
        self.assertTrue(found, f"accepted, expected {prefix}")
        self.assertTrue(found[0].startswith(prefix), found)
        self.assertIn(contains, found[0])


class SparseBundleTests(SparseTestCase):
    FRAUD = [1, 3, 5, 7, 9, 11]

    def test_valid_model_bundle(self):
        d = self.sparse(self.FRAUD, 0, 12, model="fraud", payloads=True, signatures=True)
        rc, out, err = run("bundle", "--vkey", self.vkey, d)
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(
            out,
            f"OK sparse bundle origin={ORIGIN} from=0 to=12 size=12 entries=6 filter=[model=fraud] "
            "payloads=6 signatures=6 rotations=0\n",
        )

    def test_valid_range_bundles(self):
        for start, end, size in ((0, 12, 12), (3, 8, 12), (3, 8, 8), (11, 12, 12), (4, 5, 9)):
            with self.subTest(start=start, end=end, size=size):
                d = self.sparse(range(start, end), start, end, size=size)
                self.assertEqual(self.problems(d), [])

    def test_changed_entry_byte_names_the_seq(self):
        for seqs, model in ((self.FRAUD, "fraud"), (range(2, 9), None)):
            for k in seqs:
                with self.subTest(seq=k, model=model):
                    changed = self.entries[k].replace(b"alice", b"alicf").replace(b"anonymous", b"anonymouz")
                    self.assertNotEqual(changed, self.entries[k])
                    start, end = (0, 12) if model else (2, 9)
                    d = self.sparse(seqs, start, end, model=model, edit={k: changed})
                    self.assertFirst(d, f"seq {k}:")

    def test_removed_entry_names_the_seq(self):
        # Its proof left behind: the proof names it.
        d = self.sparse(self.FRAUD, 0, 12, model="fraud", drop={5})
        self.assertFirst(d, "seq 5:", "no such entry")
        # A range bundle must be gap-free, so even a clean removal is seen.
        seqs = [s for s in range(2, 9) if s != 5]
        d = self.sparse(seqs, 2, 9)
        self.assertFirst(d, "seq 5:", "missing")
        d = self.sparse(range(2, 8), 2, 9)
        self.assertFirst(d, "seq 8:", "missing")

    def test_modified_proof_names_the_seq(self):
        for k in self.FRAUD:
            with self.subTest(seq=k):
                proofs = [{"seq": s, "path": [b64(p) for p in t_path(s, self.leaves)]} for s in self.FRAUD]
                i = self.FRAUD.index(k)
                proofs[i]["path"][-1] = b64(flip(t_path(k, self.leaves)[-1]))
                d = self.sparse(self.FRAUD, 0, 12, model="fraud", proofs=proofs)
                self.assertFirst(d, f"seq {k}:", "inclusion proof")
        proofs = [{"seq": s, "path": [b64(p) for p in t_path(s, self.leaves)]} for s in self.FRAUD]
        proofs[2]["path"].pop()
        self.assertFirst(self.sparse(self.FRAUD, 0, 12, model="fraud", proofs=proofs), "seq 5:")
        proofs[2] = {"seq": 5, "path": []}
        proofs.append({"seq": 5, "path": []})
        self.assertFirst(self.sparse(self.FRAUD, 0, 12, model="fraud", proofs=proofs), "seq 5:")

    def test_wrong_key(self):
        d = self.sparse(self.FRAUD, 0, 12, model="fraud")
        found = self.problems(d, vkey=vkey_for(OTHER_SEED))
        self.assertTrue(found and found[0].startswith("checkpoint:"), found)
        rc, out, _ = run("bundle", "--vkey", vkey_for(OTHER_SEED), d)
        self.assertEqual(rc, 1, out)
        d = self.sparse(self.FRAUD, 0, 12, model="fraud", note=self.checkpoint(seed=OTHER_SEED))
        self.assertFirst(d, "checkpoint:", "no signature by")

    def test_selection_rules(self):
        # An entry the model filter does not select, though genuinely in the log.
        self.assertFirst(
            self.sparse([1, 2, 3], 0, 12, model="fraud"), "seq 2:", "not a decision, stream_ended nor model-version entry of model"
        )
        # Out of order, and outside from..to.
        self.assertFirst(self.sparse([3, 1], 0, 12, model="fraud"), "seq 1:", "out of order")
        self.assertFirst(self.sparse([1, 3, 9], 0, 8, model="fraud"), "seq 9:", "outside")
        # A decision of the model before from (only its model-version entries may be there).
        self.assertFirst(self.sparse([1, 3], 2, 8, model="fraud"), "seq 1:", "outside the bundle's range 2..8")

    def test_manifest_and_files(self):
        d = self.sparse(self.FRAUD, 0, 12, model="fraud", manifest={"size": 11, "to": 11})
        found = self.problems(d)
        self.assertTrue(any(p.startswith("checkpoint: size 12") for p in found), found)
        for bad in ({"to": 13}, {"filter": {"model": 3}}, {"filter": {"who": None}}, {"filter": None}, {"payloads": "yes"}):
            with self.subTest(bad):
                found = self.problems(self.sparse(self.FRAUD, 0, 12, model="fraud", manifest=bad))
                self.assertTrue(found and found[0].startswith("manifest:"), found)
        d = self.sparse(self.FRAUD, 0, 12, model="fraud")
        os.remove(os.path.join(d, "proofs.jsonl"))
        self.assertFirst(d, "proofs:", "missing")
        d = self.sparse(self.FRAUD, 0, 12, model="fraud", payloads=True)
        os.remove(os.path.join(d, "payloads.jsonl"))
        self.assertFirst(d, "payloads:")

    def test_bad_payload_and_signature(self):
        d = self.sparse(self.FRAUD, 0, 12, model="fraud", payloads=True, signatures=True)
        with open(os.path.join(d, "payloads.jsonl"), "ab") as f:
            f.write(json.dumps(payload_record(4)).encode() + b"\n")
        self.assertFirst(d, "payload seq 4:", "not in the bundle")
        d = self.sparse(self.FRAUD, 0, 12, model="fraud", signatures=True)
        with open(os.path.join(d, "signatures.jsonl"), "rb") as f:
            lines = f.read().splitlines()
        lines[1] = canonical({"seq": 3, "signature": b64(entry_signature(SEED, self.entries[5]))})
        with open(os.path.join(d, "signatures.jsonl"), "wb") as f:
            f.write(b"\n".join(lines) + b"\n")
        self.assertFirst(d, "seq 3:", "per-entry signature")

    def test_rotation_is_carried_and_followed(self):
        new_vkey = vkey_for(OTHER_SEED)
        objects = [json.loads(e) for e in self.entries]
        objects[8] = {"kind": "key_rotated", "new_vkey": new_vkey, "old_vkey": self.vkey, "origin": ORIGIN, "seq": 8, "time": objects[8]["time"]}
        self.entries = rechain(objects)
        self.leaves = [t_leaf(e) for e in self.entries]
        note = self.checkpoint(seed=OTHER_SEED)
        d = self.sparse([1, 3, 5, 8], 0, 6, model="fraud", note=note)
        self.assertEqual(self.problems(d), [])
        self.assertIn("rotations=1", gv.verify_bundle(gv.parse_vkey(self.vkey), d)[2])
        # Without the rotation the checkpoint's key cannot be explained.
        d = self.sparse([1, 3, 5], 0, 6, model="fraud", note=note)
        self.assertFirst(d, "checkpoint:")


class SparseApprovalTests(SparseTestCase):
    """Model-filtered bundles hold the model's model-version entries wherever they are in the log,
    and each decision's approval_seq must lead to its version_approved entry in the bundle.

    The log: 0 gateway_started; 1 version_proposed fraud/1; 2 version_approved fraud/1 (approved);
    4 version_approved credit-scoring/1 (approved); 11 version_retired fraud/1; decisions of fraud
    at 3, 5, 7, 9 naming approval 2, of credit-scoring at 6, 8, 10 naming approval 4."""

    FRAUD_ALL = [1, 2, 3, 5, 7, 9, 11]

    def setUp(self):
        super().setUp()
        self.relog({})

    def relog(self, changes):
        """Rebuild the log, `changes` mapping a seq to members to set on its decision."""
        objects = [json.loads(e) for e in self.entries]
        for obj in objects:
            if obj["kind"] == "decision":
                obj["approval_seq"] = 2 if obj["model"] == "fraud" else 4
        for seq, kind, model, state in (
            (1, "version_proposed", "fraud", "proposed"),
            (2, "version_approved", "fraud", "approved"),
            (4, "version_approved", "credit-scoring", "approved"),
            (11, "version_retired", "fraud", "retired"),
        ):
            objects[seq] = {
                "approvals": [],
                "change_ref": "CHG-1",
                "kind": kind,
                "model": model,
                "origin": ORIGIN,
                "principal": "root",
                "principal_roles": ["admin"],
                "risk_class": "limited",
                "seq": seq,
                "state": state,
                "time": objects[seq]["time"],
                "version": "1",
            }
        for seq, members in changes.items():
            objects[seq].update(members)
        self.entries = rechain(objects)
        self.leaves = [t_leaf(e) for e in self.entries]

    def test_valid_bundles_with_version_entries(self):
        d = self.sparse(self.FRAUD_ALL, 0, 12, model="fraud", signatures=True)
        self.assertEqual(self.problems(d), [])
        # From 5: the proposal and the approval come before it, the retirement after `to`.
        d = self.sparse([1, 2, 5, 7, 11], 5, 9, model="fraud", signatures=[5, 7, 11])
        self.assertEqual(self.problems(d), [])
        rc, out, err = run("bundle", "--vkey", self.vkey, d)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("from=5 to=9 size=12 entries=5 filter=[model=fraud]", out)
        # A time range is unchanged: gap-free from..to, approvals not followed.
        self.assertEqual(self.problems(self.sparse(range(5, 9), 5, 9)), [])

    def test_removed_approval_names_each_decision(self):
        d = self.sparse([1, 3, 5, 7, 9, 11], 0, 12, model="fraud")
        found = self.problems(d)
        self.assertEqual([p.split(":")[0] for p in found], ["seq 3", "seq 5", "seq 7", "seq 9"], found)
        self.assertIn("approval_seq 2 is not in the bundle", found[0])

    def test_approval_seq_must_be_a_completed_approval_of_the_same_version(self):
        for target, members, needle in (
            (1, {}, "its kind is 'version_proposed'"),
            (2, {"version": "2"}, "its version is '1', the decision's '2'"),
            (3, {}, "its kind is 'decision'"),
            (2, {"approval_seq": "2"}, "is not a seq"),
        ):
            with self.subTest(target=target, members=members):
                self.relog({5: dict({"approval_seq": target}, **members)})
                self.assertFirst(self.sparse(self.FRAUD_ALL, 0, 12, model="fraud"), "seq 5:", needle)
        self.relog({2: {"state": "proposed"}})
        self.assertFirst(self.sparse(self.FRAUD_ALL, 0, 12, model="fraud"), "seq 3:", "its state is 'proposed'")
        self.relog({2: {"model": "other"}, 3: {"approval_seq": 2}})
        found = self.problems(self.sparse([1, 3, 5, 7, 9, 11], 0, 12, model="fraud"))
        self.assertTrue(found[0].startswith("seq 3:") and "not in the bundle" in found[0], found)
        self.relog({5: {"approval_seq": None}})
        d = self.sparse(self.FRAUD_ALL, 0, 12, model="fraud")
        self.assertEqual(self.problems(d), [], "a null approval_seq has nothing to follow")

    def test_selection_of_version_entries(self):
        # Another model's approval, though genuinely in the log.
        self.assertFirst(
            self.sparse([1, 2, 3, 4, 5], 0, 12, model="fraud"), "seq 4:", "not a decision, stream_ended nor model-version entry"
        )
        # A model-version entry before from is selected; a decision there is not.
        self.assertEqual(self.problems(self.sparse([1, 2, 5], 5, 6, model="fraud")), [])
        self.assertFirst(self.sparse([1, 2, 3, 5], 5, 6, model="fraud"), "seq 3:", "outside the bundle's range 5..6")
        # Past `to`, up to size: still selected; past size, not.
        self.assertEqual(self.problems(self.sparse([2, 3, 11], 3, 4, model="fraud")), [])
        self.assertFirst(
            self.sparse([2, 3, 11], 3, 4, size=11, model="fraud"), "seq 11:", "outside the bundle's range 0..11"
        )
        # Seqs still strictly increase.
        self.assertFirst(self.sparse([2, 1, 3], 0, 12, model="fraud"), "seq 1:", "out of order")
        self.assertFirst(self.sparse([1, 2, 2, 3], 0, 12, model="fraud"), "seq 2:", "out of order")
        # A version entry before from in a time-range bundle: not part of it.
        self.assertFirst(self.sparse([2, 5, 6], 5, 7), "seq 2:", "out of order")

    def test_no_signature_before_from(self):
        d = self.sparse([1, 2, 5, 7], 5, 9, model="fraud", signatures=[2, 5, 7])
        self.assertFirst(d, "seq 2:", "before from")


# --- policy verdicts and reviews (docs/audit-format.md section 13) -------------

def run_here(*args: str) -> tuple[int, str, str]:
    """As run(), in this process (the subprocess start-up is most of a run's time)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = gv.main(list(args))
        except SystemExit as exit_:
            rc = exit_.code
    return rc, out.getvalue(), err.getvalue()


BORDERLINE = "borderline credit score in output score: within [0.45, 0.55]"
AUDIT = "audit sample (rate 0.05)"
CALLER = "caller alice is not allowed to use credit-scoring (callers must start with svc-)"
DROP = object()  # a change that removes the member


def verdict(action=None, deny=(), hold=(), flag=(), error=None) -> dict:
    """A VERDICT as the gateway records it: sorted reason sets, action the strongest non-empty one."""
    sets = {"deny": sorted(deny), "hold": sorted(hold), "flag": sorted(flag)}
    if action is None:
        action = next((name for name in ("deny", "hold", "flag") if sets[name]), "allow")
    return dict(sets, action=action, error=error)


def sha_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def review_id(n: int) -> str:
    return hashlib.sha256(b"review%d" % n).hexdigest()[:32]


def review_log_objects() -> list:
    """A log with policies and reviews (entry objects, prev_hash unset):

    0 gateway_started; 1 policy_set_loaded; 2 decision allowed; 3 decision held (202);
    4 review_opened hold of 3; 5 decision flagged; 6 review_opened flag of 5;
    7 review_decided approve of 4 (released); 8 decision denied at the request stage (403);
    9 policy_set_loaded (a reload); 10 decision held; 11 review_opened hold of 10 with a deadline;
    12 review_timed_out of 11 (rejected); 13 review_decided override of 6 (reviewed);
    14 decision whose request evaluation failed; 15 gateway_stopped.
    """
    objects = [json.loads(e) for e in build_entries(16)]
    ids = {seq: obj.get("decision_id") for seq, obj in enumerate(objects)}

    def common(seq, kind, **members):
        return dict({"kind": kind, "origin": ORIGIN, "seq": seq, "time": objects[seq]["time"]}, **members)

    def files(*names):
        return [{"file": name, "sha256": sha_hex(name)} for name in names]

    def opened(seq, n, decision_seq, kind, reasons, deadline=None, on_timeout=None):
        return common(
            seq, "review_opened", review_id=review_id(n), decision_id=ids[decision_seq], decision_seq=decision_seq,
            review_kind=kind, model="credit-scoring", version="1", stage="response", reasons=reasons,
            answer_sha256=sha_hex(f"answer {decision_seq}"), deadline=deadline, on_timeout=on_timeout,
        )

    def decided(seq, n, opened_seq, decision_seq, verdict_, outcome, reason=None, override=None):
        return common(
            seq, "review_decided", review_id=review_id(n), decision_id=ids[decision_seq], decision_seq=decision_seq,
            opened_seq=opened_seq, reviewer="rita", verdict=verdict_, reason=reason,
            answer_sha256=sha_hex(f"answer {decision_seq}"), override_sha256=override, outcome=outcome,
        )

    def policy(set_seq, request, response):
        return {"set_seq": set_seq, "request": request, "response": response}

    objects[1] = common(1, "policy_set_loaded", files=files("audit_sample.rego", "credit_borderline.rego"))
    objects[2]["policy"] = policy(1, verdict(), verdict())
    objects[3].update(outcome="held", status=202, policy=policy(1, verdict(), verdict(hold=[BORDERLINE])))
    objects[4] = opened(4, 4, 3, "hold", [BORDERLINE])
    objects[5]["policy"] = policy(1, verdict(), verdict(flag=[AUDIT]))
    objects[6] = opened(6, 6, 5, "flag", [AUDIT])
    objects[7] = decided(7, 4, 4, 3, "approve", "released")
    objects[8].update(
        outcome="denied", status=403, error_code="policy_denied", policy=policy(1, verdict(deny=[CALLER], flag=[AUDIT]), None)
    )
    objects[9] = common(9, "policy_set_loaded", files=files("audit_sample.rego", "caller_groups.rego"))
    objects[10].update(outcome="held", status=202, policy=policy(9, verdict(), verdict(hold=[BORDERLINE])))
    objects[11] = opened(11, 11, 10, "hold", [BORDERLINE], "2026-11-27T10:15:11.000Z", "reject")
    objects[12] = common(
        12, "review_timed_out", review_id=review_id(11), decision_id=ids[10], decision_seq=10, opened_seq=11,
        outcome="rejected", waited_ms=900000,
    )
    objects[13] = decided(13, 6, 6, 5, "override", "reviewed", reason="wrong label", override=sha_hex("corrected"))
    objects[14]["policy"] = policy(9, verdict("allow", error="evaluation timed out"), verdict())
    objects[15] = common(15, "gateway_stopped")
    for obj in objects:
        if obj["kind"] == "decision" and "policy" not in obj:
            obj["policy"] = None
    return objects


def apply_changes(objects, changes) -> list:
    """A copy of `objects` with `changes` (seq -> {member: value, or DROP}, or a function of the object) applied."""
    objects = json.loads(json.dumps(objects))
    for seq, change in (changes or {}).items():
        if callable(change):
            change(objects[seq])
            continue
        for member, value in change.items():
            if value is DROP:
                objects[seq].pop(member, None)
            else:
                objects[seq][member] = value
    return objects


def set_policy(**members):
    return lambda obj: obj["policy"].update(members)


def held_policy_9() -> dict:
    """The policy member of a decision held at the response stage under the set loaded at seq 9."""
    return {"set_seq": 9, "request": verdict(), "response": verdict(hold=[BORDERLINE])}


class ReviewTestCase(BundleWriter, SparseTestCase):
    N = 16

    def setUp(self):
        LogTestCase.setUp(self)
        self.objects = review_log_objects()
        self.use(self.objects)

    def use(self, objects):
        self.entries = rechain(objects)
        self.leaves = [t_leaf(e) for e in self.entries]
        self.N = len(self.entries)

    def log_problems(self, changes=None, count=None):
        lines = rechain(apply_changes(self.objects, changes)[:count])
        note = signed_checkpoint(SEED, len(lines), t_mth([t_leaf(x) for x in lines]))
        return gv.verify_log(gv.parse_vkey(self.vkey), b"".join(x + b"\n" for x in lines), note)[0]

    def assertNamed(self, problems, seq, needle, also=()):
        """Every problem names `seq` (or a seq of `also`), and one naming `seq` says `needle`."""
        named = {p.split(":")[0] for p in problems}
        self.assertEqual(named, {f"seq {s}" for s in (seq, *also)}, problems)
        self.assertTrue(any(p.startswith(f"seq {seq}:") and needle in p for p in problems), problems)


class ReviewLogTests(ReviewTestCase):
    def test_valid_log(self):
        self.assertEqual(self.log_problems(), [])
        rc, out, err = self.run_log(self.entries)
        self.assertEqual(rc, 0, out + err)
        # Logs without policies (no policy member, or null) are unchanged.
        self.assertEqual(self.log_problems({2: {"policy": DROP}, 5: {"policy": None}}), [])

    def test_broken_variants_name_the_seq(self):
        ids = {seq: obj.get("decision_id") for seq, obj in enumerate(self.objects)}
        close_review_4 = {
            "review_id": review_id(4), "decision_id": ids[3], "decision_seq": 3, "opened_seq": 4,
            "outcome": "released", "answer_sha256": sha_hex("answer 3"), "verdict": "approve", "override_sha256": None,
        }
        held_14 = {"outcome": "held", "status": 202, "policy": held_policy_9()}
        flag_review_6 = {"opened_seq": 6, "review_id": review_id(6), "decision_seq": 5, "decision_id": ids[5]}
        unsorted_flags = {"action": "flag", "deny": [], "hold": [], "flag": ["b", "a"], "error": None}
        no_error = {k: v for k, v in verdict().items() if k != "error"}
        unsorted_files = [{"file": "b.rego", "sha256": sha_hex("b")}, {"file": "a.rego", "sha256": sha_hex("a")}]
        cases = [
            # review entry -> decision
            ("decision_seq of another decision", {6: {"decision_seq": 2}}, 6, "names decision", (13,)),
            ("decision_seq of a non-decision", {6: {"decision_seq": 1}}, 6, "not a decision", (13,)),
            ("decision_seq not below", {6: {"decision_seq": 7}}, 6, "not below", (13,)),
            ("hold review moved to another decision", {4: {"decision_seq": 2, "decision_id": ids[2]}}, 4, "not held", (3, 7)),
            ("review model differs", {4: {"model": "fraud"}}, 4, "model 'fraud'", ()),
            ("review version differs", {11: {"version": "2"}}, 11, "version '2'", ()),
            ("review reasons differ from the verdict", {4: {"reasons": ["something else"]}}, 4, "reasons", ()),
            ("review stage without a verdict", {4: {"stage": "request"}}, 4, "reasons", ()),
            # review_opened on its own
            ("review opened twice", {11: {"review_id": review_id(4)}}, 11, "already opened at seq 4", (12,)),
            ("flag review with on_timeout", {6: {"on_timeout": "release"}}, 6, "flag review", ()),
            ("deadline not RFC 3339", {11: {"deadline": "tomorrow"}}, 11, "deadline", ()),
            ("reasons unsorted", {4: {"reasons": ["b", "a"]}}, 4, "sorted", ()),
            ("answer_sha256 not hex", {4: {"answer_sha256": "xyz"}}, 4, "answer_sha256", (7,)),
            ("review_kind unknown", {6: {"review_kind": "later"}}, 6, "review_kind", ()),
            ("review_id missing", {6: {"review_id": DROP}}, 6, "review_id is missing", (13,)),
            # closing entries
            ("review decided twice", {13: close_review_4}, 13, "already closed at seq 7", ()),
            ("decided after timing out", {12: dict(close_review_4, outcome="rejected")}, 12, "already closed at seq 7", ()),
            ("override without digest", {13: {"override_sha256": None}}, 13, "override_sha256 is null", ()),
            ("digest without override", {7: {"override_sha256": sha_hex("x")}}, 7, "not override", ()),
            ("reject without reason", {7: {"verdict": "reject", "outcome": "rejected"}}, 7, "reason is null", ()),
            ("override without reason", {13: {"reason": None}}, 13, "reason is null", ()),
            ("approve but rejected", {7: {"outcome": "rejected"}}, 7, "outcome 'rejected' is not 'released'", ()),
            ("reject but released", {7: {"verdict": "reject", "reason": "no"}}, 7, "is not 'rejected'", ()),
            ("flag review released", {13: {"outcome": "released"}}, 13, "is not 'reviewed'", ()),
            ("answer digest changed", {7: {"answer_sha256": sha_hex("other")}}, 7, "answer_sha256", ()),
            ("opened_seq of another review", {12: {"opened_seq": 4}}, 12, "review_id", ()),
            ("opened_seq of a decision", {12: {"opened_seq": 10}}, 12, "not a review_opened", ()),
            ("opened_seq not below", {7: {"opened_seq": 7}}, 7, "not below", ()),
            ("closing names another decision", {7: {"decision_id": ids[5]}}, 7, "decision_id", ()),
            ("timed out against on_timeout", {12: {"outcome": "released"}}, 12, "on_timeout reject", ()),
            ("flag review timed out", {12: flag_review_6}, 12, "cannot time out", (13,)),
            ("waited_ms not an integer", {12: {"waited_ms": "long"}}, 12, "waited_ms", ()),
            ("reviewer empty", {7: {"reviewer": ""}}, 7, "reviewer", ()),
            # decisions
            ("held decision with wrong status", {3: {"status": 200}}, 3, "status is 200, not 202", (4,)),
            ("denied decision with wrong status", {8: {"status": 200}}, 8, "not 403", ()),
            ("held without a hold verdict", {10: set_policy(response=verdict(flag=[AUDIT]))}, 10, "is hold", (11,)),
            ("denied without a deny verdict", {8: set_policy(request=verdict(), response=verdict())}, 8, "action is deny", ()),
            ("held without policy", {3: {"policy": None}}, 3, "policy is null", ()),
            ("policy.set_seq not the latest set", {14: set_policy(set_seq=1)}, 14, "entry at seq 9 put another set in force after it", ()),
            ("policy.set_seq not a policy set", {2: set_policy(set_seq=0)}, 2, "'gateway_started' entry", ()),
            ("policy.set_seq not below", {2: set_policy(set_seq=9)}, 2, "not below", ()),
            ("policy members", {2: set_policy(extra=1)}, 2, "exactly the members", ()),
            ("action not the strongest set", {5: set_policy(response=verdict("allow", flag=[AUDIT]))}, 5, "is 'flag'", (6,)),
            ("hold beats flag", {2: set_policy(response=verdict("flag", hold=["h"], flag=["f"]))}, 2, "'hold'", ()),
            ("unknown action", {2: set_policy(request=verdict("maybe"))}, 2, "action 'maybe'", ()),
            ("reasons unsorted in a verdict", {2: set_policy(request=unsorted_flags)}, 2, "sorted", ()),
            ("error with reasons", {14: set_policy(request=verdict("allow", deny=["d"], error="boom"))}, 14, "error is set", ()),
            ("verdict member missing", {2: set_policy(request=no_error)}, 2, "members", ()),
            ("request verdict missing", {2: set_policy(request=None)}, 2, "policy.request is not an object", ()),
            ("response after a request deny", {8: set_policy(response=verdict())}, 8, "never reached the response stage", ()),
            ("decision_id not hex", {2: {"decision_id": "X" * 32}}, 2, "decision_id", ()),
            ("policy set unsorted", {1: {"files": unsorted_files}}, 1, "sorted", ()),
            ("policy set digest", {9: {"files": [{"file": "a.rego", "sha256": "ABC"}]}}, 9, "sha256", ()),
            ("held decision without a review", {14: held_14}, 14, "no review_opened of review_kind hold", ()),
        ]
        for name, changes, seq, needle, also in cases:
            with self.subTest(name):
                self.assertNamed(self.log_problems(changes), seq, needle, also)

    def test_any_member_value_is_reported_not_a_crash(self):
        values = (None, [], {}, "x", 1.5, -1, True, [1], ["b", "a"])
        entries = [(seq, gv.parse_json(json.dumps(o))) for seq, o in enumerate(self.objects)]
        for seq, obj in entries:
            paths = [(k,) for k in obj if k != "seq"]
            policy = obj.get("policy")
            if isinstance(policy, dict):
                paths += [("policy", k) for k in policy]
                paths += [("policy", st, k) for st in ("request", "response") if policy[st] for k in policy[st]]
            for path in paths:
                target = obj
                for k in path[:-1]:
                    target = target[k]
                kept = target[path[-1]]
                for value in values:
                    target[path[-1]] = value
                    try:
                        gv.check_policies_and_reviews(entries)
                        gv.sample_report(entries, 0.5, AUDIT)
                    except Exception as err:  # noqa: BLE001 - any exception is the failure
                        self.fail(f"seq {seq} {'.'.join(path)} = {value!r}: {err!r}")
                target[path[-1]] = kept
        self.assertEqual(gv.check_policies_and_reviews(entries), [])

    def test_held_decision_without_review_only_in_a_finished_log(self):
        held = {14: {"outcome": "held", "status": 202, "policy": held_policy_9()}}
        self.assertNamed(self.log_problems(held), 14, "ends with gateway_stopped at seq 15")
        # The log goes on (no gateway_stopped yet): the review may still come.
        self.assertEqual(self.log_problems(held, count=15), [])
        # A bundle from 0 that ends with the gateway_stopped: as the log.
        self.objects = apply_changes(self.objects, held)
        self.use(self.objects)
        found = self.check_bundle(self.bundle(0, 16))
        self.assertNamed(found, 14, "no review_opened")
        # A bundle from 1, or one ending before the stop: not a whole log.
        self.assertEqual(self.check_bundle(self.bundle(1, 16)), [])
        self.assertEqual(self.check_bundle(self.bundle(0, 15)), [])

    def check_bundle(self, d):
        return gv.verify_bundle(gv.parse_vkey(self.vkey), d)[0]

    def test_contiguous_bundles(self):
        for start, end in ((0, 16), (5, 16), (8, 13), (12, 16), (4, 8)):
            with self.subTest(start=start, end=end):
                self.assertEqual(self.check_bundle(self.bundle(start, end)), [])
        rc, out, err = run("bundle", "--vkey", self.vkey, self.bundle(5, 16))
        self.assertEqual(rc, 0, out + err)

    def test_links_before_from_are_taken_as_given(self):
        # Broken, but its review_opened (seq 4) is before the bundle: not seen.
        self.use(apply_changes(self.objects, {7: {"answer_sha256": sha_hex("other")}}))
        self.assertEqual(self.check_bundle(self.bundle(5, 16)), [])
        self.assertNamed(self.check_bundle(self.bundle(4, 16)), 7, "answer_sha256")

    def test_contiguous_bundle_from_k_names_the_seq(self):
        for changes, seq, needle, also in (
            # set_seq 1 is before from 5, but the reload at 9 is in the bundle.
            ({14: set_policy(set_seq=1)}, 14, "entry at seq 9 put another set in force after it", ()),
            # The review is opened at 11, in the bundle; opened_seq says 4, before it.
            ({12: {"opened_seq": 4}}, 12, "was opened at seq 11", ()),
            ({13: {"override_sha256": None}}, 13, "override_sha256 is null", ()),
            ({10: {"status": 200}}, 10, "not 202", (11,)),
            ({11: {"review_id": review_id(6)}}, 11, "already opened at seq 6", (12,)),
        ):
            with self.subTest(changes=changes):
                self.use(apply_changes(self.objects, changes))
                self.assertNamed(self.check_bundle(self.bundle(5, 16)), seq, needle, also)
        rc, out, _ = run("bundle", "--vkey", self.vkey, self.bundle(5, 16))
        self.assertEqual(rc, 1, out)
        self.assertIn("FAIL seq 11: review_opened: ", out)

    def test_sparse_bundles(self):
        # A time range: gap-free from..to, links inside it checked.
        self.assertEqual(self.problems(self.sparse(range(4, 16), 4, 16)), [])
        self.use(apply_changes(self.objects, {14: set_policy(set_seq=1), 7: {"outcome": "rejected"}}))
        found = self.problems(self.sparse(range(4, 16), 4, 16))
        self.assertEqual([p.split(":")[0] for p in found], ["seq 7", "seq 14"], found)
        # Its review_opened (4) is not in the bundle: not seen.
        self.assertEqual([p.split(":")[0] for p in self.problems(self.sparse(range(5, 16), 5, 16))], ["seq 14"])
        # A model filter selects decisions only: their verdicts are checked on their own.
        self.use(apply_changes(self.objects, {5: set_policy(response=verdict("allow", flag=[AUDIT]))}))
        found = self.problems(self.sparse([2, 3, 5, 8, 10, 14], 0, 16, model="credit-scoring"))
        self.assertNamed(found, 5, "strongest")


# --- the audit sample ----------------------------------------------------------


def independent_sample(decision_id: str) -> Fraction:
    """The sample as an exact rational: floor(first 8 bytes as an integer / 2^11) / 2^53."""
    digest = hashlib.sha256("govgate-sample/v1".encode("ascii") + decision_id.lower().encode("ascii")).digest()
    return Fraction(int.from_bytes(digest[:8], byteorder="big") // 2048, 2**53)


SAMPLE_REASON = "audit sample (rate 0.3)"
SAMPLE_BELOW = "0.3"


def sample_log_objects(flagged=None, stage="response") -> list:
    """gateway_started, policy_set_loaded, then 24 decisions with policies (seq 2..25), gateway_stopped.

    A decision is flagged with SAMPLE_REASON at `stage` when its independently
    computed sample is below 0.3 (or, with `flagged`, when its seq is in it).
    The first sampled decision is denied at the request stage (no response verdict).
    """
    objects = [json.loads(e) for e in build_entries(27)]
    objects[1] = {"files": [{"file": "audit.rego", "sha256": sha_hex("audit")}], "kind": "policy_set_loaded",
                  "origin": ORIGIN, "seq": 1, "time": objects[1]["time"]}
    objects[26] = {"kind": "gateway_stopped", "origin": ORIGIN, "seq": 26, "time": objects[26]["time"]}
    denied = None
    for obj in objects[2:26]:
        in_sample = independent_sample(obj["decision_id"]) < Fraction(SAMPLE_BELOW)
        flag = [SAMPLE_REASON] if (obj["seq"] in flagged if flagged is not None else in_sample) else []
        request, response = verdict(flag=flag if stage == "request" else []), verdict(flag=flag if stage == "response" else [])
        if in_sample and denied is None and stage == "response":
            denied = obj["seq"]
            request, response = verdict(deny=[CALLER]), None
            obj.update(outcome="denied", status=403, error_code="policy_denied")
        obj["policy"] = {"set_seq": 1, "request": request, "response": response}
    return objects


class SampleTests(ReviewTestCase):
    KNOWN = (
        ("00000000000000000000000000000000", 0.059758623695773117),
        ("65a1b2c3d4e5f60718293a4b5c6d7e8f", 0.34989937761793855),
        ("ffffffffffffffffffffffffffffffff", 0.47095991349324606),
    )

    def setUp(self):
        LogTestCase.setUp(self)
        self.objects = sample_log_objects()
        self.use(self.objects)
        self.ids = {obj["seq"]: obj["decision_id"] for obj in self.objects[2:26]}
        self.sampled = [s for s, i in self.ids.items() if independent_sample(i) < Fraction(SAMPLE_BELOW)]
        self.denied = self.sampled[0]
        # The log must exercise both sides of the bound.
        self.assertGreaterEqual(len(self.sampled), 3)
        self.assertGreaterEqual(len(self.ids) - len(self.sampled), 3)

    def test_known_answers(self):
        for decision_id, want in self.KNOWN:
            self.assertEqual(gv.sample_of(decision_id), want)
            self.assertEqual(Fraction(want), independent_sample(decision_id))
        self.assertEqual(gv.sample_of(self.KNOWN[1][0].upper()), self.KNOWN[1][1])

    def test_against_the_independent_formula(self):
        for n in range(500):
            decision_id = hashlib.sha256(b"any%d" % n).hexdigest()[:32]
            exact = independent_sample(decision_id)
            got = gv.sample_of(decision_id)
            self.assertEqual(Fraction(got), exact, decision_id)
            self.assertTrue(0 <= got < 1)
            for bound in (0.05, 0.3, 0.5):
                self.assertEqual(got < bound, exact < Fraction(bound))

    def entries_args(self, objects=None, note=None):
        lines = rechain(objects or self.objects)
        entries = self.write("sample.jsonl", b"".join(x + b"\n" for x in lines))
        cp = self.write("sample-checkpoint", note or signed_checkpoint(SEED, len(lines), t_mth([t_leaf(x) for x in lines])))
        return ["--vkey", self.vkey, "--entries", entries, "--checkpoint", cp]

    def report(self, objects=None, stage="any"):
        collected = []
        lines = rechain(objects or self.objects)
        note = signed_checkpoint(SEED, len(lines), t_mth([t_leaf(x) for x in lines]))
        problems = gv.verify_log(gv.parse_vkey(self.vkey), b"".join(x + b"\n" for x in lines), note, collect=collected)[0]
        self.assertEqual(problems, [])
        return gv.sample_report(collected, float(SAMPLE_BELOW), SAMPLE_REASON, stage)

    def test_matching_sample(self):
        report = self.report()
        self.assertEqual((report.decisions, report.sampled, report.flagged), (24, len(self.sampled), len(self.sampled) - 1))
        self.assertEqual((report.missing, report.unexpected), ([], []))
        self.assertEqual([x.seq for x in report.unevaluated], [self.denied])
        rc, out, err = run("sample", *self.entries_args(), "--below", SAMPLE_BELOW, "--reason", SAMPLE_REASON, "--json")
        self.assertEqual(rc, 0, out + err)
        summary = json.loads(out)
        self.assertEqual(
            {k: summary[k] for k in ("decisions", "sampled", "flagged", "missing", "unexpected", "verified")},
            {"decisions": 24, "sampled": len(self.sampled), "flagged": len(self.sampled) - 1,
             "missing": [], "unexpected": [], "verified": True},
        )
        self.assertEqual(summary["unevaluated"], [self.ids[self.denied]])
        rc, out, err = run_here("sample", *self.entries_args(), "--below", SAMPLE_BELOW, "--reason", SAMPLE_REASON)
        self.assertEqual(rc, 0, out + err)
        self.assertIn(f"OK sample decisions=24 below=0.3 sampled={len(self.sampled)}", out)
        self.assertIn(f"note: seq {self.denied}: decision {self.ids[self.denied]}: sample", out)
        # From a contiguous bundle, too.
        rc, out, err = run_here("sample", "--vkey", self.vkey, "--bundle", self.bundle(0, 27), "--below", SAMPLE_BELOW,
                           "--reason", SAMPLE_REASON, "--json")
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(json.loads(out)["sampled"], len(self.sampled))

    def test_bound_is_strict(self):
        # A bound equal to a decision's sample leaves it out (sample < T); the next double up takes it in.
        last = max(self.sampled, key=lambda s: independent_sample(self.ids[s]))
        value = float(independent_sample(self.ids[last]))
        lines = rechain(self.objects)
        note = signed_checkpoint(SEED, len(lines), t_mth([t_leaf(x) for x in lines]))
        collected = []
        gv.verify_log(gv.parse_vkey(self.vkey), b"".join(x + b"\n" for x in lines), note, collect=collected)
        at = gv.sample_report(collected, value, SAMPLE_REASON)
        above = gv.sample_report(collected, math.nextafter(value, 1), SAMPLE_REASON)
        self.assertEqual((at.sampled, above.sampled), (len(self.sampled) - 1, len(self.sampled)))
        self.assertEqual([x.seq for x in at.unexpected], [last])
        self.assertEqual(above.unexpected, [])
        rc, out, err = run_here("sample", *self.entries_args(), "--below", repr(value), "--reason", SAMPLE_REASON, "--json")
        self.assertEqual((rc, json.loads(out)["unexpected"]), (1, [self.ids[last]]), out + err)

    def test_flag_set_missing_a_sampled_decision(self):
        left_out = self.sampled[1]
        objects = sample_log_objects(flagged=set(self.sampled) - {left_out})
        report = self.report(objects)
        self.assertEqual([x.seq for x in report.missing], [left_out])
        self.assertEqual(report.unexpected, [])
        rc, out, err = run_here("sample", *self.entries_args(objects), "--below", SAMPLE_BELOW, "--reason", SAMPLE_REASON)
        self.assertEqual(rc, 1, out + err)
        self.assertEqual(
            [line.split(":")[0] for line in fail_lines(out)], [f"FAIL seq {left_out}"], out
        )
        self.assertIn(self.ids[left_out], fail_lines(out)[0])
        rc, out, err = run_here("sample", *self.entries_args(objects), "--below", SAMPLE_BELOW, "--reason", SAMPLE_REASON, "--json")
        self.assertEqual(rc, 1, out + err)
        self.assertEqual(json.loads(out)["missing"], [self.ids[left_out]])

    def test_flagged_but_not_sampled(self):
        extra = next(s for s in self.ids if s not in self.sampled)
        objects = sample_log_objects(flagged=set(self.sampled) | {extra})
        report = self.report(objects)
        self.assertEqual(([x.seq for x in report.missing], [x.seq for x in report.unexpected]), ([], [extra]))
        rc, out, err = run_here("sample", *self.entries_args(objects), "--below", SAMPLE_BELOW, "--reason", SAMPLE_REASON, "--json")
        self.assertEqual(rc, 1, out + err)
        self.assertEqual(json.loads(out)["unexpected"], [self.ids[extra]])

    def test_stage(self):
        # Flagged at the response stage: looking at the request verdict finds none of them.
        report = self.report(stage="request")
        self.assertEqual(sorted(x.seq for x in report.missing), self.sampled)
        self.assertEqual(len(self.report(stage="response").missing), 0)
        # Flagged at the request stage (nothing denied): any and request agree, response finds none.
        objects = sample_log_objects(stage="request")
        self.assertEqual(self.report(objects, stage="request").missing, [])
        self.assertEqual(self.report(objects).missing, [])
        self.assertEqual(sorted(x.seq for x in self.report(objects, stage="response").missing), self.sampled)

    def test_log_that_does_not_verify(self):
        note = signed_checkpoint(OTHER_SEED, 27, t_mth([t_leaf(x) for x in rechain(self.objects)]))
        rc, out, err = run_here("sample", *self.entries_args(note=note), "--below", SAMPLE_BELOW, "--reason", SAMPLE_REASON, "--json")
        self.assertEqual(rc, 1, out + err)
        summary = json.loads(out)
        self.assertFalse(summary["verified"])
        self.assertTrue(summary["problems"][0].startswith("checkpoint:"), summary)
        self.assertEqual((summary["missing"], summary["unexpected"]), ([], []))

    def test_usage(self):
        args = self.entries_args()
        for bad in (
            args + ["--below", "2", "--reason", "r"],
            args + ["--below", "x", "--reason", "r"],
            args[:4] + ["--below", "0.1", "--reason", "r"],
            args + ["--bundle", self.tmp.name, "--below", "0.1", "--reason", "r"],
            args + ["--current-vkey", self.vkey, "--below", "0.1", "--reason", "r"],
            ["--vkey", self.vkey, "--bundle", os.path.join(self.tmp.name, "nowhere"), "--below", "0.1", "--reason", "r"],
        ):
            with self.subTest(bad):
                rc, out, err = run_here("sample", *bad)
                self.assertEqual(rc, 2, out + err)


# --- streamed decisions (docs/audit-format.md section 14) ---------------------

STREAM_BODY = b'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\ndata: [DONE]\n\n'


def stream_salts(seq: int) -> tuple:
    return hashlib.sha256(b"stream-rq%d" % seq).digest(), hashlib.sha256(b"stream-rs%d" % seq).digest()


def stream_payload(seq: int, request: bytes = b"", response: bytes = b"") -> dict:
    rq_salt, rs_salt = stream_salts(seq)
    return {
        "seq": seq,
        "request_salt": rq_salt.hex(),
        "response_salt": rs_salt.hex(),
        "request": b64(request),
        "response": b64(response),
    }


def streamed(obj: dict) -> dict:
    """Decision `obj` made a streamed one of model chat: outcome streaming, response null."""
    rq_salt, _ = stream_salts(obj["seq"])
    _, _, rq, _ = payload_for(obj["seq"])
    return dict(
        obj,
        model="chat",
        version="2024-06",
        outcome="streaming",
        response=None,
        request={"captured": len(rq), "commitment": commitment(rq_salt, rq), "length": 84},
    )


def stream_end(seq: int, decision: dict, **changes) -> dict:
    """The stream_ended entry at `seq` of streamed decision `decision`."""
    _, rs_salt = stream_salts(seq)
    end = {
        "decision_id": decision["decision_id"],
        "decision_seq": decision["seq"],
        "error_code": None,
        "kind": "stream_ended",
        "model": decision["model"],
        "origin": ORIGIN,
        "outcome": "served",
        "payload_mode": "full",
        "released_bytes": len(STREAM_BODY),
        "response": {"captured": len(STREAM_BODY), "commitment": commitment(rs_salt, STREAM_BODY), "length": len(STREAM_BODY)},
        "seq": seq,
        "time": decision["time"],
        "timings": {"complete_us": 250000},
        "version": decision["version"],
    }
    end.update(changes)
    return end


class StreamTests(BundleWriter, SparseTestCase):
    """A log with streamed decisions: seq 2 (chat) streamed and ended at seq 4, seq 5 (chat)
    streamed and never ended, the rest served decisions of credit-scoring, and gateway_stopped at 7."""

    N = 8

    def setUp(self):
        super().setUp()
        self.objects = [json.loads(e) for e in build_entries(self.N)]
        self.objects[2] = streamed(self.objects[2])
        self.objects[5] = streamed(self.objects[5])
        self.objects[4] = stream_end(4, self.objects[2])
        self.objects[7] = {"kind": "gateway_stopped", "origin": ORIGIN, "seq": 7, "time": self.objects[7]["time"]}
        self.relog()

    def relog(self):
        self.entries = rechain(self.objects)
        self.leaves = [t_leaf(e) for e in self.entries]

    def payloads(self) -> list:
        return [
            payload_record(1),
            stream_payload(2, request=payload_for(2)[2]),
            payload_record(3),
            stream_payload(4, response=STREAM_BODY),
            stream_payload(5, request=payload_for(5)[2]),
            payload_record(6),
        ]

    def log_problems(self):
        return gv.verify_log(gv.parse_vkey(self.vkey), b"".join(e + b"\n" for e in self.entries), self.checkpoint())

    def with_entry(self, seq: int, obj: dict):
        self.objects[seq] = obj
        self.relog()

    # acceptance

    def test_log_verifies_and_names_the_open_stream(self):
        rc, out, err = self.run_log(self.entries)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("note: open streams: 1 (streamed decisions without their stream_ended", out)
        self.assertIn("): seq 5\n", out)
        self.assertIn(f"OK log origin={ORIGIN} size=8 entries=8", out)

    def test_bundles_with_stream_payloads_verify(self):
        d = self.bundle(0, 8, payloads=self.payloads())
        problems, notes, ok_line = gv.verify_bundle(gv.parse_vkey(self.vkey), d)
        self.assertEqual(problems, [])
        self.assertIn("payloads=6", ok_line)
        self.assertEqual(len(notes), 1)
        self.assertIn("seq 5", notes[0])
        # Cut before seq 4: the stream of seq 2 is open there too.
        problems, notes, _ = gv.verify_bundle(gv.parse_vkey(self.vkey), self.bundle(0, 4))
        self.assertEqual(problems, [])
        self.assertIn("open streams: 1", notes[0])
        self.assertIn("seq 2", notes[0])
        # From seq 3: the end of seq 2 without its decision is taken as given.
        self.assertEqual(self.check_bundle(self.bundle(3, 8)), [])

    def check_bundle(self, d):
        return gv.verify_bundle(gv.parse_vkey(self.vkey), d)[0]

    def test_model_bundle_holds_the_stream_ends(self):
        d = self.sparse([2, 4, 5], 0, 8, model="chat")
        problems, notes, ok_line = gv.verify_bundle(gv.parse_vkey(self.vkey), d)
        self.assertEqual(problems, [])
        self.assertIn("entries=3", ok_line)
        self.assertIn("seq 5", notes[0])
        # A stream_ended of another model is not selected.
        self.assertFirst(
            self.sparse([1, 3, 4], 0, 8, model="credit-scoring"), "seq 4:", "not a decision, stream_ended nor"
        )

    def test_old_logs_without_streams_verify_unchanged(self):
        self.entries = build_entries(self.N)
        self.leaves = [t_leaf(e) for e in self.entries]
        problems, notes, _ = self.log_problems()
        self.assertEqual((problems, notes), ([], []))

    # rejections

    def test_end_naming_no_streamed_decision(self):
        self.with_entry(4, stream_end(4, self.objects[2], decision_seq=3))
        problems = self.log_problems()[0]
        self.assertTrue(problems[0].startswith("seq 4: stream_ended:"), problems)
        self.assertIn("names a decision with outcome 'served', not streaming", problems[0])
        self.with_entry(4, stream_end(4, self.objects[2], decision_seq=0))
        self.assertIn("names a 'gateway_started' entry, not a decision", self.log_problems()[0][0])
        self.with_entry(4, stream_end(4, self.objects[2], decision_seq=4))
        self.assertIn("decision_seq 4 is not below its own seq", self.log_problems()[0][0])

    def test_second_end_of_a_stream(self):
        self.with_entry(6, stream_end(6, self.objects[2]))
        problems = self.log_problems()[0]
        self.assertEqual(len(problems), 1, problems)
        self.assertTrue(problems[0].startswith("seq 6: stream_ended:"), problems)
        self.assertIn("already ended at seq 4 (a second stream_ended)", problems[0])
        # Also in a bundle that lacks the decision itself.
        self.assertIn("a second stream_ended", self.check_bundle(self.bundle(3, 8))[0])

    def test_end_of_another_model_version_or_id(self):
        for member, value, said in (
            ("model", "other", "its model is 'other', the decision's 'chat'"),
            ("version", None, "its version is None, the decision's '2024-06'"),
            ("decision_id", "ab" * 16, "its decision_id is 'abab"),
        ):
            with self.subTest(member):
                self.with_entry(4, stream_end(4, self.objects[2], **{member: value}))
                problems = self.log_problems()[0]
                self.assertTrue(problems[0].startswith("seq 4: stream_ended: not the stream of the decision at seq 2"), problems)
                self.assertIn(said, problems[0])

    def test_stream_members(self):
        _, rs_salt = stream_salts(4)
        for changes, said in (
            ({"outcome": "done"}, "outcome 'done' is not served or error"),
            ({"outcome": "error"}, "outcome is error but error_code is None"),
            ({"error_code": "client_disconnected"}, "outcome is served but error_code is 'client_disconnected'"),
            ({"released_bytes": -1}, "released_bytes -1 is not a non-negative integer"),
            ({"timings": {}}, "timings is not"),
            ({"response": None}, "response is not an object"),
            ({"response": {"length": 1}}, "response has the members ['length']"),
            ({"decision_id": "XY"}, "decision_id 'XY' is not 32 lowercase hex digits"),
        ):
            with self.subTest(said):
                self.with_entry(4, stream_end(4, self.objects[2], **changes))
                problems = self.log_problems()[0]
                self.assertTrue(problems and problems[0].startswith("seq 4: stream_ended:"), problems)
                self.assertIn(said, problems[0])
        self.setUp()
        self.with_entry(4, stream_end(4, self.objects[2], outcome="error", error_code="upstream_failed"))
        self.assertEqual(self.log_problems()[0], [])
        self.with_entry(2, dict(self.objects[2], response={"length": 0}))
        self.assertEqual(
            self.log_problems()[0][0], "seq 2: decision: outcome is streaming but response is not null"
        )

    def test_payload_bytes_no_commitment_covers(self):
        for seq, edit, said in (
            (4, {"request": b64(b"x")}, "request is 1 bytes, but this entry commits to no request"),
            (4, {"response": b64(b"y")}, "BLAKE3(response_salt || response) is"),
            (2, {"response": b64(b"data")}, "response is 4 bytes, but this entry commits to no response"),
            (2, {"request": b64(b"{}")}, "BLAKE3(request_salt || request) is"),
        ):
            with self.subTest(seq=seq, edit=edit):
                payloads = [dict(p, **edit) if p["seq"] == seq else p for p in self.payloads()]
                problems = self.check_bundle(self.bundle(0, 8, payloads=payloads))
                self.assertEqual(len(problems), 1, problems)
                self.assertTrue(problems[0].startswith(f"payload seq {seq}: line"), problems)
                self.assertIn(said, problems[0])


class EvidenceTests(unittest.TestCase):
    """What a govgate-bundle/2 bundle lets a verifier prove (audit-format.md 8.1)."""

    def leaves(self, n: int, altered: int | None = None) -> list:
        return [gv.leaf_hash(b"entry %d%s" % (i, b"!" if i == altered else b"")) for i in range(n)]

    def checkpoints(self, sizes) -> dict:
        honest = self.leaves(12)
        return {s: gv.Checkpoint("o", s, gv.merkle_root(honest[:s]), []) for s in sizes}

    def test_a_change_is_located_between_the_carried_checkpoints(self):
        opened = self.checkpoints([3, 6, 9, 12])
        self.assertIsNone(gv.locate_change([], 0, self.leaves(12), opened))
        said = gv.locate_change([], 0, self.leaves(12, altered=7), opened)
        self.assertTrue(said.startswith("root: changed within seqs 6..8; cannot be located more precisely"), said)
        said = gv.locate_change([], 0, self.leaves(12, altered=1), opened)
        self.assertIn("changed within seqs 0..2;", said)
        self.assertIn("no smaller checkpoint", said)
        # Both batches around it carried: the seq is proven.
        said = gv.locate_change([], 0, self.leaves(12, altered=6), self.checkpoints(range(1, 13)))
        self.assertTrue(said.startswith("seq 6: entry altered"), said)

    def test_with_a_prefix_the_prefix_is_a_suspect_until_a_checkpoint_matches(self):
        honest = self.leaves(12)
        prefix = [gv.merkle_root(honest[:4])]
        altered = self.leaves(12, altered=5)
        opened = self.checkpoints([6, 9, 12])
        said = gv.locate_change(prefix, 4, altered[4:], opened)
        self.assertIn("changed within seqs 4..5 (or in the prefix hashes)", said)
        said = gv.locate_change(prefix, 4, self.leaves(12, altered=10)[4:], opened)
        self.assertIn("changed within seqs 9..11;", said)

    def test_signatures_are_required_where_the_log_records_them_on(self):
        entries = [(0, {"kind": "gateway_started"}), (1, {"kind": "entry_signatures_set", "entry_signatures": "on"})]
        entries += [(seq, {"kind": "decision"}) for seq in range(2, 5)]
        self.assertEqual(gv.missing_signatures(entries, [], {1, 2, 3, 4}), [])
        problems = gv.missing_signatures(entries, [], {1, 2, 4})
        self.assertEqual(len(problems), 1)
        self.assertTrue(problems[0].startswith("seq 3: per-entry signature missing"), problems)
        # Off, or never recorded: nothing is required.
        self.assertEqual(gv.missing_signatures(entries[:1] + entries[2:], [], set()), [])
        off = [(9, {"kind": "entry_signatures_set", "entry_signatures": "off"})]
        self.assertEqual(gv.missing_signatures([(s + 10, e) for s, e in entries[2:]], off, set()), [])
        # Recorded before the bundle: the context entry says so.
        on = [(1, {"kind": "entry_signatures_set", "entry_signatures": "on"})]
        self.assertEqual(len(gv.missing_signatures(entries[2:], on, {2})), 2)

    def test_a_kept_payload_must_be_there_unless_an_erasure_names_it(self):
        full = {"kind": "decision", "payload_mode": "full"}
        entries = [(5, full), (6, dict(full, payload_mode="digest")), (7, {"kind": "stream_ended", "payload_mode": "full"})]
        self.assertEqual(gv.missing_payloads(entries, [], {5, 7}), [])
        problems = gv.missing_payloads(entries, [], {7})
        self.assertEqual([p.split(":")[0] for p in problems], ["seq 5"])
        erased = [(40, {"kind": "payload_erased", "erased_seq": 5})]
        self.assertEqual(gv.missing_payloads(entries, erased, {7}), [])

    def test_a_null_manifest_is_no_manifest(self):
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "manifest.json"), "wb") as f:
                f.write(b"null\n")
            problems, _, _ = gv.verify_bundle(gv.parse_vkey(vkey_for(OTHER_SEED)), d)
            self.assertIn("manifest: not a JSON object", problems)

    def test_the_file_list_finds_a_cut_or_unlisted_file(self):
        with tempfile.TemporaryDirectory() as d:
            data = b"a\nb\n"
            with open(os.path.join(d, "entries.jsonl"), "wb") as f:
                f.write(data)
            listed = {"entries.jsonl": {"lines": 2, "sha256": hashlib.sha256(data).hexdigest()}}
            problems: list = []
            gv.check_bundle_files(d, listed, problems)
            self.assertEqual(problems, [])
            gv.check_bundle_files(d, {"entries.jsonl": {"lines": 3, "sha256": "00"}}, problems)
            self.assertIn("files: entries.jsonl has 2 lines, the manifest says 3", problems)
            with open(os.path.join(d, "payloads.jsonl"), "wb") as f:
                f.write(b"")
            problems = []
            gv.check_bundle_files(d, listed, problems)
            self.assertEqual(problems, ["files: payloads.jsonl is present but the manifest does not list it"])


class EntryAuthTests(unittest.TestCase):
    """The `auth` member naming how a caller (a decision's, a feedback sender's) was established."""

    def entry(self, kind, auth):
        return {"kind": kind, "seq": 3, "time": "2026-12-06T00:00:00.000Z", "origin": "o",
                "prev_hash": "0" * 64, "auth": auth}

    def test_a_known_method_with_its_members_is_sound_on_decisions_and_feedback(self):
        for kind in ("decision", "feedback_received"):
            for auth in ({"method": "api_key", "key_id": "bo-1"}, {"method": "none"},
                         {"method": "jwt", "issuer": "https://id.example", "subject": "s"}):
                self.assertIsNone(gv.check_entry_fields(self.entry(kind, auth)), (kind, auth))

    def test_an_unknown_method_or_member_is_named_on_decisions_and_feedback(self):
        for kind in ("decision", "feedback_received"):
            problem = gv.check_entry_fields(self.entry(kind, {"method": "password"}))
            self.assertIn("known method", problem or "")
            problem = gv.check_entry_fields(self.entry(kind, {"method": "api_key", "key_id": "k", "key": "x"}))
            self.assertIn("unexpected member", problem or "")
            problem = gv.check_entry_fields(self.entry(kind, {"method": "api_key"}))
            self.assertIn("lacks key_id", problem or "")


class RetentionRunTests(unittest.TestCase):
    def entry(self, **changes):
        model = {"model": "scorer", "payloads": "200d", "cutoff": "2026-06-01T00:00:00.000Z", "erased": 3,
                 "through_seq": 9}
        entry = {"kind": "retention_run", "seq": 12, "time": "2026-12-06T00:00:00.000Z", "origin": "o",
                 "prev_hash": "0" * 64, "models": [model], "more": False}
        for name, value in changes.items():
            if name in model:
                model[name] = value
            else:
                entry[name] = value
        return entry

    def test_a_run_with_its_models_is_sound(self):
        self.assertIsNone(gv.check_entry_fields(self.entry()))

    def test_a_malformed_run_is_named(self):
        for changes, words in [
            ({"models": []}, "models is not"),
            ({"erased": -1}, "erased of a model"),
            ({"through_seq": 13}, "after the run"),
            ({"more": "no"}, "more is not"),
        ]:
            self.assertIn(words, gv.check_entry_fields(self.entry(**changes)) or "", changes)


class LedgerOutageTests(unittest.TestCase):
    def entry(self, **changes):
        entry = {"kind": "ledger_outage", "seq": 41, "time": "2026-12-06T10:00:03.620Z", "origin": "o",
                 "prev_hash": "0" * 64, "since": "2026-12-06T10:00:01.120Z", "until": "2026-12-06T10:00:03.500Z",
                 "duration_ms": 2380, "reason": "File too large (os error 27)"}
        entry.update(changes)
        return entry

    def test_an_outage_is_sound(self):
        self.assertIsNone(gv.check_entry_fields(self.entry()))

    def test_a_malformed_outage_is_named(self):
        for changes, words in [
            ({"since": "yesterday"}, "not an RFC 3339"),
            ({"until": "2026-12-06T10:00:00.000Z"}, "not in order"),
            ({"until": "2026-12-06T10:00:04.000Z", "duration_ms": 2880}, "not in order"),
            ({"duration_ms": 2381}, "duration_ms is not until - since (2380)"),
            ({"reason": None}, "reason is not"),
        ]:
            self.assertIn(words, gv.check_entry_fields(self.entry(**changes)) or "", changes)


def kpi_snapshot_members() -> dict:
    """A kpi_snapshot's members worked out by hand: two groups of three rows, all labeled, and one numeric
    feature whose reference is (10, 20) and window (30, 40, 50, 60). The figures are computed here from the
    documented formulas, not by the verifier."""
    f_sel, m_sel = 1 / 3, 2 / 3
    p, q = [0.5] + [0.0] * 8 + [0.5], [0.0] * 9 + [1.0]
    psi = sum((max(b, 1e-4) - max(a, 1e-4)) * math.log(max(b, 1e-4) / max(a, 1e-4)) for a, b in zip(p, q))
    mid = [(a + b) / 2 for a, b in zip(p, q)]
    js = math.sqrt(0.5 * sum(a * math.log2(a / m) for a, m in zip(p, mid) if a > 0)
                   + 0.5 * sum(b * math.log2(b / m) for b, m in zip(q, mid) if b > 0))
    return {
        "model": "scorer",
        "trigger": "version_change",
        "cause_seq": 3,
        "previous_version": "1",
        "serving_version": "2",
        "settings": {"window": 6, "min_group_size": 2, "max_groups": 50, "reference_rows": 2,
                     "snapshot_every_secs": 3600},
        "fairness": {
            "rows_in_window": 6,
            "rows_total": 8,
            "attributes": [{
                "name": "sex",
                "groups": [
                    {"group": "f", "rows": 3, "selected": 1, "labeled": 3, "tp": 1, "fp": 0, "tn": 1, "fn": 1,
                     "eligible": True, "selection_rate": f_sel, "tpr": 0.5, "fpr": 0},
                    {"group": "m", "rows": 3, "selected": 2, "labeled": 3, "tp": 1, "fp": 1, "tn": 1, "fn": 0,
                     "eligible": True, "selection_rate": m_sel, "tpr": 1, "fpr": 0.5},
                ],
                "missing_rows": 0,
                "overflow_rows": 0,
                "demographic_parity_difference": m_sel - f_sel,
                "demographic_parity_ratio": f_sel / m_sel,
                "equal_opportunity_difference": 0.5,
                "equalized_odds_difference": 0.5,
            }],
        },
        "drift": [{
            "version": "1",
            "reference_state": "ready",
            "reference_source": "first_rows",
            "reference_rows": 2,
            "rows_in_window": 4,
            "rows_total": 4,
            "features": [{
                "name": "amount",
                "kind": "numeric",
                "edges": list(range(11, 20)),
                "reference_counts": [1] + [0] * 8 + [1],
                "window_counts": [0] * 9 + [4],
                "window_missing": 0,
                "psi": psi,
                "js_distance": js,
                # F_R is 1/2 and F_C 0 from the first edge on.
                "ks": {"statistic": 0.5, "at_edge": 11, "edges": list(range(11, 20)),
                       "reference_counts": [1] + [0] * 8 + [1], "window_counts": [0] * 9 + [4]},
            }],
        }],
        "omitted": [],
    }


class KpiSnapshotTests(LogTestCase):
    """kpi_snapshot entries: their shape, and every rate and aggregate against the counts beside it."""

    def entry(self, members: dict, seq: int = 7) -> dict:
        return {"kind": "kpi_snapshot", "seq": seq, "time": "2026-12-06T00:00:00.000Z", "origin": ORIGIN,
                "prev_hash": "0" * 64, **members}

    def problem(self, edit) -> str:
        members = kpi_snapshot_members()
        edit(members)
        return gv.check_entry_fields(self.entry(members)) or ""

    def test_a_snapshot_whose_figures_follow_from_its_counts_is_sound(self):
        self.assertIsNone(gv.check_entry_fields(self.entry(kpi_snapshot_members())))
        for trigger in ("interval", "stop"):
            members = kpi_snapshot_members()
            members["trigger"] = trigger
            del members["cause_seq"], members["previous_version"]
            self.assertIsNone(gv.check_entry_fields(self.entry(members)), trigger)

    def test_an_edited_rate_or_aggregate_is_named(self):
        def rate(m):
            m["fairness"]["attributes"][0]["groups"][1]["selection_rate"] = 0.7

        def aggregate(m):
            m["fairness"]["attributes"][0]["demographic_parity_ratio"] = 0.4

        def tpr(m):
            m["fairness"]["attributes"][0]["groups"][0]["tpr"] = None

        def count(m):
            m["fairness"]["attributes"][0]["groups"][0]["tp"] = 2

        self.assertIn("'m': selection_rate 0.7 does not recompute", self.problem(rate))
        self.assertIn("demographic_parity_ratio 0.4 does not recompute", self.problem(aggregate))
        self.assertIn("'f': tpr None does not recompute", self.problem(tpr))
        self.assertIn("counts do not add up", self.problem(count))

    def test_drift_figures_recompute_within_their_tolerance(self):
        def nudged(m):
            m["drift"][0]["features"][0]["psi"] += 1e-12

        def edited(m):
            m["drift"][0]["features"][0]["psi"] += 1e-6

        def ks(m):
            m["drift"][0]["features"][0]["ks"]["statistic"] = 0.25

        def bins(m):
            m["drift"][0]["features"][0]["window_counts"][0] = 1

        self.assertEqual(self.problem(nudged), "")
        self.assertIn("psi", self.problem(edited))
        self.assertIn("does not recompute from its bins", self.problem(edited))
        self.assertIn("KS statistic 0.25", self.problem(ks))
        self.assertIn("do not add up to rows_in_window", self.problem(bins))

    def test_bounded_parts_are_not_recomputed_but_the_rest_is(self):
        def bounded(m):
            m["omitted"] = ["ks_bins", "groups"]
            attribute = m["fairness"]["attributes"][0]
            del attribute["groups"][0]
            attribute.update(groups_omitted=1, rows_omitted=3, eligible_groups_omitted=1)
            for name in ("edges", "reference_counts", "window_counts"):
                del m["drift"][0]["features"][0]["ks"][name]

        self.assertEqual(self.problem(bounded), "")

        def uncounted(m):
            bounded(m)
            m["fairness"]["attributes"][0]["rows_omitted"] = 2

        self.assertIn("do not add up to rows_in_window", self.problem(uncounted))

    def test_the_fleets_figures_are_checked_like_the_replicas_own(self):
        def fleet(m):
            m["fleet"] = {name: copy.deepcopy(m[name]) for name in ("fairness", "drift", "omitted")}

        def edited(m):
            fleet(m)
            m["fleet"]["fairness"]["attributes"][0]["demographic_parity_ratio"] = 0.4

        def shape(m):
            m["fleet"] = []

        self.assertEqual(self.problem(fleet), "")
        self.assertIn("kpi_snapshot: fleet attribute 'sex': demographic_parity_ratio 0.4 does not recompute", self.problem(edited))
        self.assertIn("fleet is not an object", self.problem(shape))

    def test_shape_problems_are_named(self):
        def cause(m):
            m["cause_seq"] = 7

        def trigger(m):
            m["trigger"] = "hourly"

        def omitted(m):
            m["omitted"] = ["everything"]

        self.assertIn("cause_seq", self.problem(cause))
        self.assertIn("trigger", self.problem(trigger))
        self.assertIn("omitted", self.problem(omitted))

    def test_the_documented_example_is_sound(self):
        with open(os.path.join(HERE, os.pardir, "docs", "audit-format.md"), encoding="utf-8") as f:
            text = f.read()
        example = text[text.index("### 17.2 Example"):].split("```json\n", 1)[1].split("```", 1)[0]
        self.assertIsNone(gv.check_entry_fields(json.loads(example)))

    def test_a_log_with_an_edited_snapshot_fails_naming_its_seq(self):
        for edit, expect_ok in ((lambda m: None, True),
                                (lambda m: m["fairness"]["attributes"][0].update(equal_opportunity_difference=0.25),
                                 False)):
            lines, prev = [], "0" * 64
            for raw in build_entries(self.N):
                entry = json.loads(raw)
                if entry["seq"] == 5:
                    members = kpi_snapshot_members()
                    edit(members)
                    entry = self.entry(members, seq=5)
                    entry["time"] = "2026-11-27T10:00:05.000Z"
                entry["prev_hash"] = prev
                line = canonical(entry)
                lines.append(line)
                prev = gv.blake3_hex(line)
            self.entries = lines
            self.leaves = [t_leaf(e) for e in lines]
            result = self.run_log(lines)
            if expect_ok:
                self.assertEqual(result[0], 0, result[1] + result[2])
            else:
                self.assertFirstFail(result, "seq 5")
                self.assertIn("equal_opportunity_difference 0.25 does not recompute", result[1])


class UpgradeTests(unittest.TestCase):
    """Bundles written by govgate before streamed decisions had two entries
    (tests/data/upgrade/v0.1-a2c4271, its README says how) verify unchanged."""

    OLD = os.path.join(DATA, "upgrade", "v0.1-a2c4271")

    def old(self, name: str) -> str:
        return os.path.join(self.OLD, name)

    def test_old_bundles_verify(self):
        vkey = "@" + self.old("log.vkey")
        for name, ok in (
            ("bundle-full", "OK bundle origin=govgate.demo/local from=0 to=21 payloads=7 signatures=0 rotations=0\n"),
            (
                "bundle-model-support-chat",
                "OK sparse bundle origin=govgate.demo/local from=0 to=21 size=21 entries=7 "
                "filter=[model=support-chat] payloads=3 signatures=0 rotations=0\n",
            ),
        ):
            with self.subTest(name):
                rc, out, err = run("bundle", "--vkey", vkey, self.old(name))
                self.assertEqual((rc, out), (0, ok), out + err)

    def test_old_log_verifies(self):
        rc, out, err = run(
            "log",
            "--vkey",
            "@" + self.old("log.vkey"),
            "--entries",
            self.old("bundle-full/entries.jsonl"),
            "--checkpoint",
            self.old("bundle-full/checkpoint.txt"),
        )
        self.assertEqual((rc, out), (0, "OK log origin=govgate.demo/local size=21 entries=21 rotations=0\n"), out + err)

    def test_bundles_from_before_carried_checkpoints_verify(self):
        """tests/data/upgrade/v0.1-57d6b4f: one checkpoint, no file list, no signature record."""
        old = os.path.join(DATA, "upgrade", "v0.1-57d6b4f")
        vkey = "@" + os.path.join(old, "log.vkey")
        for name, ok in (
            ("bundle-full", "OK bundle origin=govgate.example/fixture from=0 to=18 payloads=8 signatures=18 rotations=1\n"),
            ("bundle-from-3", "OK bundle origin=govgate.example/fixture from=3 to=9 payloads=2 signatures=6 rotations=1\n"),
        ):
            with self.subTest(name):
                rc, out, err = run("bundle", "--vkey", vkey, os.path.join(old, name))
                self.assertEqual((rc, out), (0, ok), out + err)


def run_in_process(*args: str) -> tuple[int, str, str]:
    """run(), in this process: what a test class patched in the module applies to the command too."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = gv.main(list(args))
        except SystemExit as exit:
            rc = exit.code
    return rc, out.getvalue(), err.getvalue()


class Spilled:
    """Runs a test class's in-process bundle checks with every SpillMap and Spool limit at one item
    and one recent entry kept parsed, so the state a large bundle keeps on disk (SQLite, spool
    files, earlier entries read again from entries.jsonl) is what is checked."""

    def setUp(self):
        super().setUp()
        saved = (gv.SPILL_LIMIT, gv.SPOOL_LIMIT, gv.RECENT_ENTRIES)
        gv.SPILL_LIMIT = gv.SPOOL_LIMIT = gv.RECENT_ENTRIES = 1

        def restore():
            gv.SPILL_LIMIT, gv.SPOOL_LIMIT, gv.RECENT_ENTRIES = saved

        self.addCleanup(restore)


class SpilledBundleTests(Spilled, BundleTests):
    test_every_range = None  # 91 bundles: the plain run covers it
    test_usage = test_jobs_print_the_same = None  # about the command line only

    def run_bundle(self, d, vkey=None):
        return run_in_process("bundle", "--vkey", vkey or self.vkey, d)


class SpilledRotationTests(Spilled, RotationTests):
    pass


class SpilledReviewLogTests(Spilled, ReviewLogTests):
    pass


class SpilledStreamTests(Spilled, StreamTests):
    pass


class SpilledEvidenceTests(Spilled, EvidenceTests):
    pass


class Parallel:
    """Runs a test class's in-process bundle checks with two worker processes and batches of three lines,
    so every problem must come out the same, in the same order, from the --jobs path."""

    def setUp(self):
        super().setUp()
        saved = (gv.DEFAULT_JOBS, gv.BATCH_LINES)
        gv.DEFAULT_JOBS, gv.BATCH_LINES = 2, 3

        def restore():
            gv.DEFAULT_JOBS, gv.BATCH_LINES = saved

        self.addCleanup(restore)


class ParallelBundleTests(Parallel, BundleTests):
    test_every_range = None  # 91 bundles: the plain run covers it
    test_usage = test_jobs_print_the_same = None  # about the command line only

    def run_bundle(self, d, vkey=None):
        return run_in_process("bundle", "--vkey", vkey or self.vkey, d)


class ParallelRotationTests(Parallel, RotationTests):
    pass


class ParallelEvidenceTests(Parallel, EvidenceTests):
    pass


class ScaleTests(unittest.TestCase):
    """A bundle far larger than the memory the verifier is given: it is read in one pass, not held.

    3000 decisions with 32 KiB request and response captures make a bundle
    of about 270 MB; the verifier runs with its address space limited to
    less than that (RLIMIT_AS), so reading any of its large files whole fails.
    """

    N = 3000
    CAPTURE = 32 * 1024
    LIMIT = 160 * 1024 * 1024

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = os.path.join(cls.tmp.name, "bundle")
        os.mkdir(cls.dir)
        leaves, prev = [], "0" * 64
        with open(os.path.join(cls.dir, "entries.jsonl"), "wb") as entries, open(
            os.path.join(cls.dir, "payloads.jsonl"), "wb"
        ) as payloads:
            for seq in range(cls.N):
                rq_salt, rs_salt = hashlib.sha256(b"rq%d" % seq).digest(), hashlib.sha256(b"rs%d" % seq).digest()
                rq = (b"%08d" % seq) * (cls.CAPTURE // 8)
                rs = (b"%08x" % seq) * (cls.CAPTURE // 8)
                entry = {
                    "decision_id": hashlib.sha256(b"id%d" % seq).hexdigest()[:32],
                    "kind": "decision",
                    "model": "m",
                    "origin": ORIGIN,
                    "outcome": "served",
                    "payload_mode": "full",
                    "prev_hash": prev,
                    "request": {"captured": len(rq), "commitment": commitment(rq_salt, rq), "length": len(rq)},
                    "response": {"captured": len(rs), "commitment": commitment(rs_salt, rs), "length": len(rs)},
                    "seq": seq,
                    "status": 200,
                    "time": "2026-12-06T10:00:00.000Z",
                    "version": "1",
                }
                raw = canonical(entry)
                entries.write(raw + b"\n")
                leaves.append(t_leaf(raw))
                prev = blake3.blake3(raw).hexdigest()
                record = {"seq": seq, "request_salt": rq_salt.hex(), "response_salt": rs_salt.hex()}
                record.update(request=b64(rq), response=b64(rs))
                payloads.write(json.dumps(record).encode() + b"\n")
        manifest = {
            "format": "govgate-bundle/1",
            "origin": ORIGIN,
            "vkey": vkey_for(SEED),
            "from": 0,
            "to": cls.N,
            "prefix": [],
            "payloads": True,
        }
        with open(os.path.join(cls.dir, "manifest.json"), "w") as f:
            json.dump(manifest, f)
        with open(os.path.join(cls.dir, "checkpoint.txt"), "wb") as f:
            f.write(signed_checkpoint(SEED, cls.N, t_mth(leaves)))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def run_limited(self, directory: str, *options: str) -> tuple:
        def limit():
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (self.LIMIT, self.LIMIT))

        proc = subprocess.run(
            [sys.executable, TOOL, "bundle", *options, "--vkey", vkey_for(SEED), directory],
            capture_output=True,
            text=True,
            timeout=120,
            preexec_fn=limit,
        )
        return proc.returncode, proc.stdout, proc.stderr

    def test_a_bundle_larger_than_the_memory_limit_verifies(self):
        size = sum(os.path.getsize(os.path.join(self.dir, name)) for name in os.listdir(self.dir))
        self.assertGreater(size, self.LIMIT)
        rc, out, err = self.run_limited(self.dir)
        self.assertEqual(
            (rc, out), (0, f"OK bundle origin={ORIGIN} from=0 to={self.N} payloads={self.N} signatures=0 rotations=0\n"), err
        )

    def test_a_chunked_bundle_larger_than_the_memory_limit_verifies(self):
        """The same content as govgate-bundle/3 in zstd chunks of 1000 entries: decompressed as it is read."""
        source = os.path.join(self.tmp.name, "carried")
        os.mkdir(source)
        for name in ("entries.jsonl", "payloads.jsonl", "checkpoint.txt"):
            os.link(os.path.join(self.dir, name), os.path.join(source, name))
        with open(os.path.join(self.dir, "entries.jsonl"), "rb") as f:
            leaves = [t_leaf(line.rstrip(b"\n")) for line in f]
        carried_checkpoints(source, leaves, (1000, 2000, self.N))
        with open(os.path.join(self.dir, "manifest.json")) as f:
            manifest = json.load(f)
        manifest.update(format="govgate-bundle/2", first_vkey=manifest["vkey"], rotations=[], checkpoints_every=1)
        with open(os.path.join(source, "manifest.json"), "w") as f:
            json.dump(manifest, f)
        chunked = os.path.join(self.tmp.name, "chunked")
        os.mkdir(chunked)
        chunks = chunk_bundle(source, chunked, 1000, "zstd")
        self.assertEqual([c["from"] for c in chunks], [0, 1000, 2000])
        content = sum(os.path.getsize(os.path.join(source, name)) for name in ("entries.jsonl", "payloads.jsonl"))
        self.assertGreater(content, self.LIMIT)
        rc, out, err = self.run_limited(chunked)
        self.assertEqual(
            (rc, out), (0, f"OK bundle origin={ORIGIN} from=0 to={self.N} payloads={self.N} signatures=0 rotations=0\n"), err
        )
        shutil.rmtree(chunked)
        shutil.rmtree(source)

    def test_a_sparse_bundle_larger_than_the_memory_limit_verifies(self):
        """The same entries as govgate-bundle-sparse/1 (no filter: every seq, each with its inclusion proof)."""
        sparse = os.path.join(self.tmp.name, "sparse")
        os.mkdir(sparse)
        for name in ("entries.jsonl", "payloads.jsonl", "checkpoint.txt"):
            os.link(os.path.join(self.dir, name), os.path.join(sparse, name))
        with open(os.path.join(self.dir, "entries.jsonl"), "rb") as f:
            leaves = [t_leaf(line.rstrip(b"\n")) for line in f]
        subtrees: dict = {}

        def mth(lo: int, hi: int) -> bytes:  # t_mth of leaves[lo:hi], each subtree hashed once
            if (lo, hi) not in subtrees:
                subtrees[lo, hi] = leaves[lo] if hi - lo == 1 else t_node(mth(lo, lo + t_split(hi - lo)), mth(lo + t_split(hi - lo), hi))
            return subtrees[lo, hi]

        def path(m: int, lo: int, hi: int) -> list:  # t_path over leaves[lo:hi]
            if hi - lo <= 1:
                return []
            k = t_split(hi - lo)
            return path(m, lo, lo + k) + [mth(lo + k, hi)] if m < k else path(m - k, lo + k, hi) + [mth(lo, lo + k)]

        self.assertEqual(mth(0, self.N), t_mth(leaves))
        with open(os.path.join(sparse, "proofs.jsonl"), "wb") as f:
            for seq in range(self.N):
                f.write(canonical({"path": [b64(h) for h in path(seq, 0, self.N)], "seq": seq}) + b"\n")
        manifest = {"format": "govgate-bundle-sparse/1", "origin": ORIGIN, "vkey": vkey_for(SEED), "from": 0}
        manifest.update(to=self.N, size=self.N, filter={"model": None, "since": None, "until": None}, payloads=True)
        with open(os.path.join(sparse, "manifest.json"), "w") as f:
            json.dump(manifest, f)
        rc, out, err = self.run_limited(sparse)
        self.assertEqual(
            (rc, out),
            (
                0,
                f"OK sparse bundle origin={ORIGIN} from=0 to={self.N} size={self.N} entries={self.N} filter=[] "
                f"payloads={self.N} signatures=0 rotations=0\n",
            ),
            err,
        )
        shutil.rmtree(sparse)

    def test_a_corrupted_payload_line_is_named_by_file_and_seq(self):
        copy = os.path.join(self.tmp.name, "corrupted")
        os.mkdir(copy)
        for name in os.listdir(self.dir):
            if name != "payloads.jsonl":
                shutil.copy(os.path.join(self.dir, name), copy)
        bad = 2345
        with open(os.path.join(self.dir, "payloads.jsonl"), "rb") as src, open(
            os.path.join(copy, "payloads.jsonl"), "wb"
        ) as dst:
            for number, line in enumerate(src, 1):
                if number == bad + 1:
                    line = line.replace(b'"request": "', b'"request": "QUJD', 1)
                dst.write(line)
        rc, out, err = self.run_limited(copy, "--jobs", "2")  # each worker process under the limit too
        self.assertEqual(rc, 1, out + err)
        fails = fail_lines(out)
        self.assertEqual(len(fails), 1, out)
        self.assertTrue(fails[0].startswith(f"FAIL payload seq {bad}: line {bad + 1}: BLAKE3(request_salt || request) is "), out)
        self.assertIn(f"request is {self.CAPTURE + 3} bytes, the entry's request.captured is {self.CAPTURE}", out)


# --- chunked bundles (docs/audit-format.md section 8.4) ---------------------


def file_entry(path: str) -> dict:
    """A file's member of a manifest's files: its bytes, LF-terminated lines and SHA-256."""
    with open(path, "rb") as f:
        data = f.read()
    return {"bytes": len(data), "lines": data.count(b"\n"), "sha256": hashlib.sha256(data).hexdigest()}


class ErasedRangeScaleTests(unittest.TestCase):
    """A range whose payloads retention erased after it, verified in less memory than its context needs held.

    65 536 decisions, then the erasure of each one's payload: the bundle of
    the decisions carries one context.jsonl line per erasure (the entry and
    its inclusion path into the checkpoint of 131 072), about 73 MB. Held
    whole and parsed (entries, paths), that is several times the verifier's
    address space (RLIMIT_AS, as ScaleTests).
    """

    N = 1 << 16
    LIMIT = ScaleTests.LIMIT

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = os.path.join(cls.tmp.name, "bundle")
        os.mkdir(cls.dir)
        raws, prev = [], "0" * 64
        for seq in range(2 * cls.N):
            entry = {"origin": ORIGIN, "prev_hash": prev, "seq": seq, "time": "2026-12-06T10:00:00.000Z"}
            decision_id = hashlib.sha256(b"id%d" % (seq % cls.N)).hexdigest()[:32]
            if seq < cls.N:
                entry.update(decision_id=decision_id, kind="decision", model="m", outcome="served", status=200)
                side = {"captured": 8, "commitment": "0" * 64, "length": 8}
                entry.update(payload_mode="full", request=side, response=dict(side), version="1")
            else:
                entry.update(decision_id=decision_id, kind="payload_erased", erased_seq=seq - cls.N, reason="retention")
            raw = canonical(entry)
            raws.append(raw)
            prev = blake3.blake3(raw).hexdigest()
        levels = [[t_leaf(raw) for raw in raws]]
        while len(levels[-1]) > 1:
            below = levels[-1]
            levels.append([t_node(below[i], below[i + 1]) for i in range(0, len(below), 2)])
        with open(os.path.join(cls.dir, "entries.jsonl"), "wb") as f:
            f.writelines(raw + b"\n" for raw in raws[: cls.N])
        with open(os.path.join(cls.dir, "context.jsonl"), "wb") as f:
            for seq in range(cls.N, 2 * cls.N):
                path = [b64(level[(seq >> height) ^ 1]) for height, level in enumerate(levels[:-1])]
                line = {"entry": json.loads(raws[seq]), "path": path, "seq": seq, "size": 2 * cls.N}
                f.write(canonical(line) + b"\n")
        open(os.path.join(cls.dir, "payloads.jsonl"), "wb").close()
        with open(os.path.join(cls.dir, "checkpoints.jsonl"), "wb") as f:
            for size, proof in ((cls.N, []), (2 * cls.N, [levels[-2][1]])):
                note = signed_checkpoint(SEED, size, levels[-1][0] if size == 2 * cls.N else levels[-2][0]).decode()
                f.write(canonical({"checkpoint": note, "consistency": [b64(p) for p in proof], "size": size}) + b"\n")
        with open(os.path.join(cls.dir, "checkpoint.txt"), "wb") as f:
            f.write(signed_checkpoint(SEED, cls.N, levels[-2][0]))
        cls.list_files()

    @classmethod
    def list_files(cls):
        """manifest.json with the file list of what the bundle holds now (as a forger would make it match)."""
        manifest = {"format": "govgate-bundle/2", "origin": ORIGIN, "vkey": vkey_for(SEED), "from": 0, "to": cls.N}
        manifest.update(prefix=[], payloads=True, first_vkey=vkey_for(SEED), rotations=[], checkpoints_every=1)
        manifest["files"] = {}
        for name in ("entries.jsonl", "context.jsonl", "payloads.jsonl", "checkpoints.jsonl", "checkpoint.txt"):
            with open(os.path.join(cls.dir, name), "rb") as f:
                data = f.read()
            manifest["files"][name] = {"lines": data.count(b"\n"), "sha256": hashlib.sha256(data).hexdigest()}
        with open(os.path.join(cls.dir, "manifest.json"), "w") as f:
            json.dump(manifest, f)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def run_limited(self) -> tuple:
        return ScaleTests.run_limited(self, self.dir)

    def test_the_erasures_after_the_range_are_not_held(self):
        self.assertGreater(os.path.getsize(os.path.join(self.dir, "context.jsonl")), self.LIMIT // 3)
        rc, out, err = self.run_limited()
        self.assertEqual(
            (rc, out), (0, f"OK bundle origin={ORIGIN} from=0 to={self.N} payloads=0 signatures=0 rotations=0\n"), err
        )

    def test_a_missing_erasure_and_a_path_leading_elsewhere_are_named(self):
        original = os.path.join(self.dir, "context.jsonl")
        saved = original + ".saved"
        os.rename(original, saved)
        try:
            with open(saved, "rb") as src, open(original, "wb") as dst:
                for number, line in enumerate(src):
                    if number == 40_000:
                        continue  # the erasure of seq 40 000
                    if number == 50_000:
                        at = line.index(b'"path":["') + len(b'"path":["')
                        line = line[:at] + (b"AAAA" if line[at:at + 4] != b"AAAA" else b"BBBB") + line[at + 4:]
                    dst.write(line)
            self.list_files()
            rc, out, err = self.run_limited()
        finally:
            os.replace(saved, original)
            self.list_files()
        self.assertEqual(rc, 1, out + err)
        self.assertIn(
            f"seq {self.N + 50_000}: context entry: its inclusion proof into the checkpoint of size {2 * self.N} "
            "does not verify",
            out,
        )
        self.assertIn("seq 40000: payload missing", out)


def carried_checkpoints(directory: str, leaves: list, sizes, seed: bytes = SEED) -> None:
    """checkpoints.jsonl (8.1) for the trees of `sizes`, each line's consistency proof from the line before."""
    with open(os.path.join(directory, "checkpoints.jsonl"), "wb") as f:
        previous = None
        for size in sizes:
            proof = [] if previous is None else t_subproof(previous, leaves[:size], True)
            note = signed_checkpoint(seed, size, t_mth(leaves[:size])).decode()
            f.write(canonical({"checkpoint": note, "consistency": [b64(p) for p in proof], "size": size}) + b"\n")
            previous = size


def chunk_bundle(src: str, dst: str, entries_per_chunk: int, compression: str = "zstd") -> list:
    """Rewrite a govgate-bundle/2 directory as govgate-bundle/3 (8.4), as govgate export --chunk-entries does:
    chunks end at carried checkpoints, at most `entries_per_chunk` entries unless those are further apart.
    Written with this file's own tree code. Returns the chunk members."""
    import gzip as gz

    suffix = {"none": "", "gzip": ".gz", "zstd": ".zst"}[compression]

    def compress(data: bytes) -> bytes:
        if compression == "gzip":
            return gz.compress(data, mtime=0)
        if compression == "zstd":
            import zstandard

            return zstandard.ZstdCompressor().compress(data)
        return data

    with open(os.path.join(src, "manifest.json")) as f:
        manifest = json.load(f)
    start, end = manifest["from"], manifest["to"]
    with open(os.path.join(src, "checkpoints.jsonl")) as f:
        sizes = [json.loads(line)["size"] for line in f]

    def read_lines(name):
        path = os.path.join(src, name)
        if not os.path.exists(path):
            return []
        with open(path, "rb") as f:
            return f.read().splitlines()

    entries = read_lines("entries.jsonl")
    by_seq = {"signatures": {}, "payloads": {}}
    for kind in by_seq:
        for line in read_lines(f"{kind}.jsonl"):
            by_seq[kind].setdefault(json.loads(line)["seq"], []).append(line)
    setting = "off"
    for line in read_lines("context.jsonl"):
        entry = json.loads(line)["entry"]
        if entry["kind"] == "entry_signatures_set" and entry["seq"] < start:
            setting = entry["entry_signatures"]
    # The right edge of the tree, as (width, hash) pairs, from the manifest's prefix.
    edge = []
    rest = start
    for prefix_hash in manifest["prefix"]:
        width = 1 << (rest.bit_length() - 1)
        edge.append((width, base64.b64decode(prefix_hash)))
        rest -= width
    bounds, a = [], start
    while a < end:
        inside = [s for s in sizes if a < s <= a + entries_per_chunk]
        b = inside[-1] if inside else min(s for s in sizes if s > a)
        bounds.append((a, b))
        a = b
    if not bounds:
        bounds = [(start, end)]
    files, chunks = {}, []
    for a, b in bounds:
        member = {"entry_signatures": setting, "files": [], "from": a, "prefix": [b64(h) for _, h in edge], "to": b}
        contents = {"entries": entries[a - start : b - start]}
        for kind in ("signatures", "payloads"):
            contents[kind] = [line for seq in range(a, b) for line in by_seq[kind].get(seq, [])]
        for kind in ("entries", "signatures", "payloads"):
            if kind != "entries" and not contents[kind]:
                continue
            name = f"chunks/{a:012d}/{kind}.jsonl{suffix}"
            data = b"".join(line + b"\n" for line in contents[kind])
            stored = compress(data)
            os.makedirs(os.path.join(dst, os.path.dirname(name)), exist_ok=True)
            with open(os.path.join(dst, name), "wb") as f:
                f.write(stored)
            files[name] = {"bytes": len(stored), "lines": len(contents[kind]), "sha256": hashlib.sha256(stored).hexdigest()}
            member["files"].append(name)
        for raw in contents["entries"]:
            entry = json.loads(raw)
            if entry["kind"] == "entry_signatures_set":
                setting = entry["entry_signatures"]
            leaf, width = t_leaf(raw), 1
            while edge and edge[-1][0] == width:
                leaf = t_node(edge.pop()[1], leaf)
                width *= 2
            edge.append((width, leaf))
        chunks.append(member)
    for name in ("checkpoint.txt", "checkpoints.jsonl", "context.jsonl"):
        if os.path.exists(os.path.join(src, name)):
            shutil.copy(os.path.join(src, name), os.path.join(dst, name))
            files[name] = file_entry(os.path.join(src, name))
    manifest.update(format="govgate-bundle/3", compression=compression, chunks=chunks, files=files)
    with open(os.path.join(dst, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    return chunks


class ChunkedTests(LogTestCase):
    """govgate-bundle/3 (audit-format.md 8.4): the chunks of a bundle, compressed, each checkable alone."""

    N = 40

    def setUp(self):
        super().setUp()
        self.write_source(range(1, self.N))

    def write_source(self, payload_seqs) -> None:
        """The govgate-bundle/2 bundle of self.entries that chunked() rewrites, with the payload lines of `payload_seqs`."""
        self.source = os.path.join(self.tmp.name, "source")
        os.makedirs(self.source, exist_ok=True)
        payloads = b"".join(json.dumps(payload_record(seq)).encode() + b"\n" for seq in payload_seqs)
        with open(os.path.join(self.source, "entries.jsonl"), "wb") as f:
            f.write(b"".join(e + b"\n" for e in self.entries))
        with open(os.path.join(self.source, "payloads.jsonl"), "wb") as f:
            f.write(payloads)
        with open(os.path.join(self.source, "checkpoint.txt"), "wb") as f:
            f.write(self.checkpoint())
        carried_checkpoints(self.source, self.leaves, range(5, self.N + 1, 5))
        manifest = {"format": "govgate-bundle/2", "origin": ORIGIN, "vkey": self.vkey, "from": 0, "to": self.N}
        files = {n: file_entry(os.path.join(self.source, n)) for n in sorted(os.listdir(self.source))}
        for entry in files.values():
            del entry["bytes"]  # as in 8.1
        manifest.update(prefix=[], payloads=True, checkpoints_every=1, first_vkey=self.vkey, rotations=[], files=files)
        with open(os.path.join(self.source, "manifest.json"), "w") as f:
            json.dump(manifest, f)
        self.ok = f"OK bundle origin={ORIGIN} from=0 to={self.N} payloads={self.N - 1} signatures=0 rotations=0\n"

    def chunked(self, compression: str = "zstd", per_chunk: int = 10) -> str:
        self.count = getattr(self, "count", 0) + 1
        d = os.path.join(self.tmp.name, f"chunked-{self.count}")
        os.mkdir(d)
        chunk_bundle(self.source, d, per_chunk, compression)
        return d

    def rewrite(self, d: str, name: str, change) -> None:
        """Change a chunk file's content and record its new digest in the manifest, so only the content is wrong."""
        import gzip as gz

        import zstandard

        path = os.path.join(d, name)
        with open(path, "rb") as f:
            data = f.read()
        if name.endswith(".zst"):
            stored = zstandard.ZstdCompressor().compress(change(zstandard.ZstdDecompressor().decompress(data)))
        elif name.endswith(".gz"):
            stored = gz.compress(change(gz.decompress(data)))
        else:
            stored = change(data)
        with open(path, "wb") as f:
            f.write(stored)
        manifest = self.manifest(d)
        manifest["files"][name].update(bytes=len(stored), sha256=hashlib.sha256(stored).hexdigest())
        self.write_manifest(d, manifest)

    def manifest(self, d: str) -> dict:
        with open(os.path.join(d, "manifest.json")) as f:
            return json.load(f)

    def write_manifest(self, d: str, manifest: dict) -> None:
        with open(os.path.join(d, "manifest.json"), "w") as f:
            json.dump(manifest, f)

    def test_zstd_gzip_and_plain_chunks_verify(self):
        self.assertEqual(run("bundle", "--vkey", self.vkey, self.source), (0, self.ok, ""))
        for compression in ("zstd", "gzip", "none"):
            with self.subTest(compression):
                d = self.chunked(compression)
                self.assertEqual(
                    [c["from"] for c in self.manifest(d)["chunks"]], [0, 10, 20, 30], "four chunks of 10"
                )
                self.assertEqual(run("bundle", "--vkey", self.vkey, d), (0, self.ok, ""))
                self.assertEqual(run("bundle", "--jobs", "2", "--vkey", self.vkey, d), (0, self.ok, ""))

    def test_a_line_moved_into_the_previous_chunks_file_is_named_there(self):
        """Read as one stream the payload lines are still in seq order; the line's own file is not its chunk's."""
        d = self.chunked("none")
        first, second = "chunks/000000000000/payloads.jsonl", "chunks/000000000010/payloads.jsonl"
        with open(os.path.join(d, second), "rb") as f:
            moved, rest = f.read().split(b"\n", 1)
        self.assertIn(b'"seq": 10,', moved)
        self.rewrite(d, first, lambda data: data + moved + b"\n")
        self.rewrite(d, second, lambda _: rest)
        manifest = self.manifest(d)
        manifest["files"][first]["lines"] += 1
        manifest["files"][second]["lines"] -= 1
        self.write_manifest(d, manifest)
        for jobs in ("1", "2"):
            code, out, _ = run("bundle", "--jobs", jobs, "--vkey", self.vkey, d)
            self.assertEqual(code, 1, out)
            self.assertIn(f"FAIL seq 10: {first} line 10: seq 10 lies outside its chunk's range 0..10\n", out)

    def test_a_listed_chunk_file_that_no_chunk_names_is_refused(self):
        """A file named like a chunk's, listed in files with its digest, but in no chunk's files: never read, so
        refused (as govgate verify --bundle refuses it)."""
        d = self.chunked("none")
        extra = "chunks/000000000010/signatures.jsonl"
        with open(os.path.join(d, extra), "wb") as f:
            f.write(b"not a signature line\n")
        manifest = self.manifest(d)
        manifest["files"][extra] = file_entry(os.path.join(d, extra))
        self.write_manifest(d, manifest)
        code, out, _ = run("bundle", "--vkey", self.vkey, d)
        self.assertEqual(code, 1, out)
        self.assertIn(f"FAIL manifest: files lists an unknown file {extra!r}", out)

    def test_jobs_check_whole_chunks_in_worker_processes(self):
        """--jobs: workers check whole chunks, this process what spans them; any problem, and the one-pass
        check reports it, so the output is the same as without --jobs."""

        def parallel(d: str) -> bool:
            check = gv.BundleCheck(gv.parse_vkey(self.vkey), d, jobs=2)
            try:
                return check._chunks_in_parallel()
            finally:
                check.close()

        d = self.chunked("zstd")
        self.assertTrue(parallel(d))
        broken = self.chunked("gzip")
        manifest = self.manifest(broken)
        manifest["chunks"][2]["prefix"][0] = b64(bytes(32))
        self.write_manifest(broken, manifest)
        self.assertFalse(parallel(broken))
        self.assertEqual(run("bundle", "--jobs", "2", "--vkey", self.vkey, broken), run("bundle", "--vkey", self.vkey, broken))
        # A payload line taken out: the light pass finds it missing; a payload altered: its chunk's worker.
        for change in (
            lambda data: data.replace(data.splitlines(keepends=True)[3], b"", 1),
            lambda data: data.replace(b'"request": "', b'"request": "QUJD', 1),
        ):
            d = self.chunked("none")
            self.rewrite(d, "chunks/000000000030/payloads.jsonl", change)
            self.assertFalse(parallel(d))
            serial = run("bundle", "--vkey", self.vkey, d)
            self.assertEqual(serial[0], 1, serial)
            self.assertEqual(run("bundle", "--jobs", "2", "--vkey", self.vkey, d), serial)

    def test_jobs_a_payload_erased_in_a_later_chunk_excuses_the_missing_line(self):
        """--jobs: a chunk worker hands back the kept payloads its chunk lacks; a payload_erased entry of a later
        chunk (seen by this process's pass) excuses them, as in the one-pass check; without it they fail."""
        objects = [json.loads(e) for e in self.entries]
        erasure = {"kind": "payload_erased", "erased_seq": 12, "reason": "test", "origin": ORIGIN, "seq": 35}
        objects[35] = dict(erasure, decision_id=objects[12]["decision_id"], time=objects[35]["time"])
        self.entries = rechain(objects)
        self.leaves = [t_leaf(e) for e in self.entries]
        self.write_source([seq for seq in range(1, self.N) if seq not in (12, 35)])

        def parallel(d: str) -> bool:
            check = gv.BundleCheck(gv.parse_vkey(self.vkey), d, jobs=2)
            try:
                return check._chunks_in_parallel()
            finally:
                check.close()

        ok = f"OK bundle origin={ORIGIN} from=0 to={self.N} payloads={self.N - 3} signatures=0 rotations=0\n"
        d = self.chunked("zstd")
        self.assertEqual(run("bundle", "--vkey", self.vkey, d), (0, ok, ""))
        self.assertTrue(parallel(d), "the erasure in chunk 30 excuses chunk 10's missing line")
        self.assertEqual(run("bundle", "--jobs", "2", "--vkey", self.vkey, d), (0, ok, ""))
        # The erasure names another seq: seq 12's line is missing, in both paths.
        objects[35]["erased_seq"] = 13
        self.entries = rechain(objects)
        self.leaves = [t_leaf(e) for e in self.entries]
        self.write_source([seq for seq in range(1, self.N) if seq not in (12, 13, 35)])
        d = self.chunked("zstd")
        self.assertFalse(parallel(d))
        serial = run("bundle", "--vkey", self.vkey, d)
        self.assertEqual(serial[0], 1, serial)
        self.assertIn("seq 12", "".join(fail_lines(serial[1])))
        self.assertEqual(run("bundle", "--jobs", "2", "--vkey", self.vkey, d), serial)

    def test_jobs_hand_back_at_most_lacking_limit_payloads(self):
        """Past LACKING_LIMIT kept payloads without a line in a chunk, its worker hands back none: the one-pass check decides."""
        d = self.chunked("none")
        self.rewrite(d, "chunks/000000000010/payloads.jsonl", lambda data: b"".join(data.splitlines(keepends=True)[3:]))
        summary = gv._chunk_worker(((self.vkey, None), d, 10))[1]
        self.assertEqual(summary["lacking"], [10, 11, 12])
        limit = gv.LACKING_LIMIT
        try:
            gv.LACKING_LIMIT = 2
            self.assertIsNone(gv._chunk_worker(((self.vkey, None), d, 10))[1]["lacking"])
        finally:
            gv.LACKING_LIMIT = limit

    def test_a_corrupted_chunk_is_named_by_file_and_seq(self):
        d = self.chunked("zstd")
        name = "chunks/000000000010/entries.jsonl.zst"
        self.rewrite(d, name, lambda data: data.replace(b'"caller":"alice"', b'"caller":"alicf"', 2))
        rc, out, err = run("bundle", "--vkey", self.vkey, d)
        self.assertEqual(rc, 1, out + err)
        fails = fail_lines(out)
        self.assertTrue(fails[0].startswith(f"FAIL {name}: seq 11: entry altered"), out)
        # Bytes changed in transit: the file list names the file.
        d = self.chunked("gzip")
        name = "chunks/000000000020/payloads.jsonl.gz"
        with open(os.path.join(d, name), "r+b") as f:
            f.seek(30)
            f.write(b"\x00\x01")
        rc, out, err = run("bundle", "--vkey", self.vkey, d)
        self.assertEqual(rc, 1, out + err)
        self.assertIn(f"FAIL files: {name}: cannot be read as gzip: ", out)
        # A payload line that does not match its entry: named by its own file and line.
        d = self.chunked("none", per_chunk=20)
        name = "chunks/000000000020/payloads.jsonl"
        self.rewrite(d, name, lambda data: data.replace(b'"seq": 25', b'"seq": 26', 1))
        rc, out, err = run("bundle", "--vkey", self.vkey, d)
        self.assertIn(f"FAIL {name}: payload seq 26: line 6: BLAKE3(request_salt || request) is ", out)
        self.assertIn(f"FAIL {name}: payload seq 26: line 7 repeats the payload of line 6", out)
        self.assertIn("FAIL chunks/000000000020/entries.jsonl: seq 25: payload missing", out)

    def test_one_chunk_alone(self):
        d = self.chunked("zstd")
        shutil.rmtree(os.path.join(d, "chunks", "000000000000"))
        shutil.rmtree(os.path.join(d, "chunks", "000000000030"))
        rc, out, err = run("bundle", "--chunk", "000000000010", "--vkey", self.vkey, d)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("note: not made with --chunk: the joins with the chunks before and after it", out)
        self.assertTrue(out.endswith(f"OK chunk 10..20 of bundle origin={ORIGIN} from=10 to=20 payloads=10 signatures=0 rotations=0\n"), out)
        # The whole bundle without those chunks does not verify; a chunk altered alone does not either.
        self.assertEqual(run("bundle", "--vkey", self.vkey, d)[0], 1)
        self.rewrite(d, "chunks/000000000020/entries.jsonl.zst", lambda data: data.replace(b"alice", b"alicf", 1))
        rc, out, err = run("bundle", "--chunk", "20", "--vkey", self.vkey, d)
        self.assertEqual(rc, 1, out + err)
        self.assertTrue(fail_lines(out)[0].startswith("FAIL chunks/000000000020/entries.jsonl.zst: seq 21: "), out)
        # No such chunk, or not a chunked bundle: usage errors.
        self.assertEqual(run("bundle", "--chunk", "15", "--vkey", self.vkey, d)[0], 2)
        self.assertEqual(run("bundle", "--chunk", "0", "--vkey", self.vkey, self.source)[0], 2)

    def test_without_the_zstandard_package_a_zstd_bundle_cannot_be_checked(self):
        zstd, gzip = self.chunked("zstd"), self.chunked("gzip")
        import zstandard

        sys.modules["zstandard"] = None  # import zstandard now fails
        try:
            rc, out, err = run_in_process("bundle", "--vkey", self.vkey, zstd)
            # gzip needs only the standard library.
            self.assertEqual(run_in_process("bundle", "--vkey", self.vkey, gzip), (0, self.ok, ""))
        finally:
            sys.modules["zstandard"] = zstandard
        self.assertEqual(rc, 2, out + err)
        self.assertIn("needs the zstandard package: install it with pip install -r tools/requirements.txt", err)

    def test_a_broken_join_is_refused(self):
        d = self.chunked("gzip")
        manifest = self.manifest(d)
        manifest["chunks"][2]["prefix"][0] = b64(bytes(32))
        self.write_manifest(d, manifest)
        rc, out, err = run("bundle", "--vkey", self.vkey, d)
        self.assertEqual(rc, 1, out + err)
        self.assertIn(
            "FAIL chunks/000000000020/entries.jsonl.gz: join at seq 20: the chunk's prefix is not the right edge", out
        )
        # Alone, the chunk's tree from that prefix does not reach the signed roots.
        rc, out, err = run("bundle", "--chunk", "20", "--vkey", self.vkey, d)
        self.assertEqual(rc, 1, out + err)
        # Chunks that do not continue each other, or a setting that is not the one in force.
        for change, expected in (
            (lambda m: m["chunks"][1].update({"from": 11}), "FAIL manifest: chunks[1]: from 11 to 20 does not continue"),
            (lambda m: m["chunks"][3].update({"entry_signatures": "on"}), "join at seq 30: the chunk's entry_signatures is on"),
        ):
            d = self.chunked("gzip", per_chunk=10)
            manifest = self.manifest(d)
            change(manifest)
            self.write_manifest(d, manifest)
            rc, out, err = run("bundle", "--vkey", self.vkey, d)
            self.assertEqual(rc, 1, out + err)
            self.assertIn(expected, out)
            shutil.rmtree(d)
        # Entries moved from one chunk into the next: each chunk holds its own seqs.
        d = self.chunked("none")
        first, second = "chunks/000000000000/entries.jsonl", "chunks/000000000010/entries.jsonl"
        with open(os.path.join(d, first), "rb") as f:
            lines = f.read().splitlines(keepends=True)
        self.rewrite(d, first, lambda data: b"".join(lines[:-1]))
        self.rewrite(d, second, lambda data: lines[-1] + data)
        manifest = self.manifest(d)
        manifest["files"][first]["lines"] -= 1
        manifest["files"][second]["lines"] += 1
        self.write_manifest(d, manifest)
        rc, out, err = run("bundle", "--vkey", self.vkey, d)
        self.assertEqual(rc, 1, out + err)
        self.assertIn(f"FAIL {first}: holds 9 entries, the chunk is seqs 0..9 (10)", out)


class UsageTests(unittest.TestCase):
    def test_usage_errors(self):
        vkey = TREE["checkpoint"]["vkey"]
        for args in (
            (),
            ("frobnicate",),
            ("log", "--vkey", vkey),
            ("receipt", "--vkey", "not-a-vkey", "--entry", TOOL, "--proof", TOOL),
            ("log", "--vkey", vkey, "--entries", "/nonexistent/entries", "--checkpoint", TOOL),
        ):
            with self.subTest(args):
                rc, out, err = run(*args)
                self.assertEqual(rc, 2, out + err)


class DecisionAuthTests(unittest.TestCase):
    """The `auth` member of decision entries: every method's shape; absent in older entries."""

    def check(self, auth):
        entry = {"seq": 1, "time": "t", "kind": "decision", "origin": "o", "prev_hash": "0" * 64}
        if auth is not None:
            entry["auth"] = auth
        return gv.check_entry_fields(entry)

    def test_sound_members_pass(self):
        for auth in (
            None,
            {"method": "none"},
            {"method": "header"},
            {"method": "header", "network": "10.0.0.0/8"},
            {"method": "api_key", "key_id": "k1"},
            {"method": "mtls", "cert_sha256": "ab" * 32},
            {"method": "jwt", "issuer": "https://idp", "subject": "s", "jti": "j"},
            {"method": "jwt", "issuer": "https://idp"},
        ):
            with self.subTest(auth):
                self.assertIsNone(self.check(auth))

    def test_bad_members_are_named(self):
        for auth in (
            "api_key",
            {"method": "password"},
            {"method": "api_key"},
            {"method": "api_key", "key_id": 7},
            {"method": "mtls", "cert_sha256": "AB" * 32},
            {"method": "none", "key_id": "k1"},
            {"method": "jwt", "subject": "s"},
        ):
            with self.subTest(auth):
                self.assertIn("auth", self.check(auth) or "")


if __name__ == "__main__":
    unittest.main()


class RiskEntryTests(unittest.TestCase):
    """risk_register_set, risk_indicator_breached and risk_indicator_recovered."""

    INDICATOR = {
        "kpi": "demographic_parity_difference", "attribute": "sex", "threshold": 0.3,
        "direction": "above", "for_secs": 0, "min_count": 8,
    }

    def register(self, **changes) -> dict:
        covered = {
            "risks": [{
                "id": "credit-bias", "title": "Unequal approval rates", "owner": "cro",
                "models": ["scorer"], "controls": ["quarterly review"], "indicators": [dict(self.INDICATOR)],
            }],
            "eval_every_secs": 30, "window_secs": 300,
        }
        entry = {"kind": "risk_register_set", **covered}
        entry["sha256"] = hashlib.sha256(gv.canonicalize(covered)).hexdigest()
        entry.update(changes)
        return entry

    def transition(self, kind: str, value, **changes) -> dict:
        entry = {
            "kind": kind, "risk": "credit-bias", "indicator": 0, "model": "scorer", **self.INDICATOR,
            "value": value, "counts": {"rows_in_window": 8}, "window_secs": 0, "register_sha256": "a" * 64,
        }
        if kind == "risk_indicator_breached":
            entry["beyond_secs"] = 0
        else:
            entry.update({"breach_seq": 1, "breached_secs": 60})
        entry.update(changes)
        return entry

    def problems(self, *entries) -> list:
        return gv.check_policies_and_reviews(list(enumerate(entries)))

    def test_a_register_breach_and_recovery_pass(self):
        self.assertEqual(
            self.problems(self.register(), self.transition("risk_indicator_breached", 1.0),
                          self.transition("risk_indicator_recovered", 0.0)),
            [],
        )

    def test_a_register_whose_digest_does_not_match_fails(self):
        found = self.problems(self.register(window_secs=60))
        self.assertEqual(len(found), 1)
        self.assertIn("is not the SHA-256 of the register's canonical JSON", found[0])

    def test_shapes_are_checked(self):
        register = self.register()
        register["risks"][0]["indicators"][0]["kpi"] = "accuracy"
        self.assertIn("kpi 'accuracy' is not a known KPI", self.problems(register)[0])
        found = self.problems(self.transition("risk_indicator_breached", 0.1))
        self.assertIn("value 0.1 is not above the threshold 0.3", found[0])
        found = self.problems(self.transition("risk_indicator_breached", 1.0, feature="amount"))
        self.assertIn("takes no feature", found[0])
        found = self.problems(self.transition("risk_indicator_breached", 1.0, counts=[]))
        self.assertIn("counts is not an object", found[0])

    def test_a_recovery_must_cite_an_open_breach_of_its_indicator(self):
        register = self.register()
        breach = self.transition("risk_indicator_breached", 1.0)
        # Cites an entry that is not a breach.
        found = self.problems(register, breach, self.transition("risk_indicator_recovered", 0.0, breach_seq=0))
        self.assertIn("breach_seq 0 is a risk_register_set", found[0])
        # Cites a breach of another model.
        other = self.transition("risk_indicator_breached", 1.0, model="credit")
        found = self.problems(register, other, self.transition("risk_indicator_recovered", 0.0))
        self.assertIn("a breach of another indicator", found[0])
        # Recovered twice.
        found = self.problems(
            register, breach, self.transition("risk_indicator_recovered", 0.0),
            self.transition("risk_indicator_recovered", 0.0),
        )
        self.assertEqual(len(found), 1)
        self.assertIn("breach_seq 1 was already recovered at seq 2", found[0])
        # Cites no earlier entry; or one missing from a log read from seq 0.
        found = self.problems(register, self.transition("risk_indicator_recovered", 0.0, breach_seq=5))
        self.assertIn("breach_seq 5 is not an earlier entry", found[0])
        # Still beyond the threshold.
        found = self.problems(register, breach, self.transition("risk_indicator_recovered", 0.5))
        self.assertIn("value 0.5 is still above the threshold 0.3", found[0])
        # A second breach while the first is open.
        found = self.problems(register, breach, self.transition("risk_indicator_breached", 1.0))
        self.assertIn("the indicator's breach at seq 1 is not recovered yet", found[0])


FLEET_ORIGIN = "govgate.example/fleet"
PUBLISHED_AT = "2026-12-07T08:00:00.000Z"


class FleetTests(unittest.TestCase):
    """fleet: a fleet bundle (govgate export --fleet, docs/audit-format.md section 8.5)."""

    SEEDS = {"r1": SEED, "r2": OTHER_SEED, "r3": THIRD_SEED}

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.count = 0

    def vkey(self, rid: str) -> str:
        return vkey_for(self.SEEDS[rid], f"{FLEET_ORIGIN}/{rid}")

    def fleet(self, sizes=None, published_notes=None, rotate_at=None) -> tuple[str, dict]:
        """A fleet bundle: per replica (published size, bundle size); returns (dir, fleet.json).

        With `rotate_at`, r1's log rotates its key (to THIRD_SEED's) at that seq.
        """
        sizes = sizes or {"r1": (4, 9), "r2": (7, 7)}
        self.count += 1
        d = os.path.join(self.tmp.name, f"fleet{self.count}")
        os.makedirs(os.path.join(d, "replicas"))
        records = []
        for rid, (published, size) in sizes.items():
            origin, seed = f"{FLEET_ORIGIN}/{rid}", self.SEEDS[rid]
            rotations, signer = None, lambda n: seed
            if rotate_at is not None and rid == "r1":
                rotations = {rotate_at: (vkey_for(seed, origin), vkey_for(THIRD_SEED, origin))}
                # The rotation's own batch (size rotate_at + 1) is under the old key.
                signer = lambda n: seed if n <= rotate_at + 1 else THIRD_SEED  # noqa: E731
            entries = build_entries(size, origin, rotations)
            leaves = [t_leaf(e) for e in entries]
            sub = os.path.join(d, "replicas", rid)
            os.mkdir(sub)
            manifest = {
                "format": "govgate-bundle/1", "origin": origin, "vkey": self.vkey(rid),
                "from": 0, "to": size, "prefix": [], "payloads": False,
            }
            files = {
                "manifest.json": json.dumps(manifest).encode(),
                "entries.jsonl": b"".join(e + b"\n" for e in entries),
                "checkpoint.txt": signed_checkpoint(signer(size), size, t_mth(leaves), origin),
            }
            for name, data in files.items():
                with open(os.path.join(sub, name), "wb") as f:
                    f.write(data)
            note = (published_notes or {}).get(rid) or signed_checkpoint(
                signer(published), published, t_mth(leaves[:published]), origin
            )
            records.append({
                "replica_id": rid, "origin": origin, "vkey": self.vkey(rid), "bundle": f"replicas/{rid}",
                "size": size,
                "published": {"size": published, "note": note.decode(), "published_at": PUBLISHED_AT},
                "consistency": [b64(x) for x in t_subproof(published, leaves, True)],
            })
        fleet = {"format": "govgate-fleet/1", "exported_at": PUBLISHED_AT, "replicas": records}
        self.write_manifest(d, fleet)
        return d, fleet

    @staticmethod
    def write_manifest(d: str, fleet: dict) -> None:
        with open(os.path.join(d, "fleet.json"), "w", encoding="utf-8") as f:
            json.dump(fleet, f)

    def run_fleet(self, d: str, rids=("r1", "r2")):
        args = []
        for rid in rids:
            args += ["--vkey", self.vkey(rid)]
        return run("fleet", *args, d)

    def assertFails(self, d: str, expected: list, rids=("r1", "r2")):
        rc, out, err = self.run_fleet(d, rids)
        self.assertEqual(rc, 1, out + err)
        self.assertEqual(fail_lines(out), expected)

    def test_a_fleet_verifies_replica_by_replica(self):
        d, _ = self.fleet()
        rc, out, err = self.run_fleet(d)
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(
            out,
            f"OK replica r1: OK bundle origin={FLEET_ORIGIN}/r1 from=0 to=9 payloads=0 signatures=0 rotations=0; "
            f"consistent with the checkpoint it published at {PUBLISHED_AT} (size 4)\n"
            f"OK replica r2: OK bundle origin={FLEET_ORIGIN}/r2 from=0 to=7 payloads=0 signatures=0 rotations=0; "
            f"consistent with the checkpoint it published at {PUBLISHED_AT} (size 7)\n"
            "OK fleet: 2 replicas, each log verified and consistent with the checkpoint it published; "
            "no control event recorded\n",
        )
        # Every published size against every bundle size.
        for published in range(1, 6):
            for size in range(published, 6):
                with self.subTest(published=published, size=size):
                    d, _ = self.fleet({"r1": (published, size)})
                    problems, _, _ = gv.verify_fleet(d, [gv.parse_vkey(self.vkey("r1"))])
                    self.assertEqual(problems, [])

    def test_every_replica_records_every_control_event_once_in_order_and_alike(self):
        def records(*kinds):
            return [(10 + i, kind, i + 1) for i, kind in enumerate(kinds)]

        alike = {"r1": records("version_proposed", "version_approved"), "r2": records("version_proposed")}
        self.assertEqual(gv.fleet_control_problems(alike), ([], 2))
        self.assertEqual(gv.fleet_control_problems({"r1": []}), ([], 0))
        gap = {"r1": [(10, "version_proposed", 1), (11, "version_approved", 3)]}
        self.assertEqual(
            gv.fleet_control_problems(gap)[0],
            ["replica r1: seq 11 records control event 3 where control event 2 was due: every replica records "
             "every change of the fleet once, in the fleet's order"],
        )
        twice = {"r1": [(10, "version_proposed", 1), (11, "version_proposed", 1)]}
        self.assertIn("records control event 1 where control event 2 was due", gv.fleet_control_problems(twice)[0][0])
        other = {"r1": records("version_proposed"), "r2": records("kpi_reference_set")}
        self.assertEqual(
            gv.fleet_control_problems(other)[0],
            ["control event 1 is 'version_proposed' on replica r1 and 'kpi_reference_set' on replica r2 (seq 10): "
             "the replicas do not record the same change"],
        )
        bad = {"r1": [(10, "version_proposed", "1")]}
        self.assertEqual(
            gv.fleet_control_problems(bad)[0], ["replica r1: seq 10: control_seq '1' is not a positive integer"]
        )

    def test_a_checkpoint_published_after_a_key_rotation_is_opened_with_the_new_key(self):
        d, _ = self.fleet({"r1": (8, 9)}, rotate_at=5)
        rc, out, err = self.run_fleet(d, ("r1",))
        self.assertEqual(rc, 0, out + err)
        self.assertIn("rotations=1; consistent with the checkpoint it published", out)
        # The same checkpoint signed by a key the log never named: refused.
        origin = f"{FLEET_ORIGIN}/r1"
        leaves = [t_leaf(e) for e in build_entries(9, origin, {5: (self.vkey("r1"), vkey_for(THIRD_SEED, origin))})]
        foreign = signed_checkpoint(OTHER_SEED, 8, t_mth(leaves[:8]), origin)
        d, _ = self.fleet({"r1": (8, 9)}, rotate_at=5, published_notes={"r1": foreign})
        rc, out, _ = self.run_fleet(d, ("r1",))
        self.assertEqual(rc, 1)
        fails = fail_lines(out)
        self.assertEqual(len(fails), 1, out)
        self.assertTrue(fails[0].startswith("FAIL replica r1: the checkpoint it published is not signed by the log's key"))

    def test_a_missing_replica_is_named(self):
        d, _ = self.fleet()
        shutil.rmtree(os.path.join(d, "replicas", "r2"))
        self.assertFails(d, ["FAIL replica r2: missing: no replicas/r2 in the fleet bundle"])

    def test_a_bundle_the_manifest_does_not_list_fails(self):
        d, fleet = self.fleet()
        fleet["replicas"].pop()
        self.write_manifest(d, fleet)
        self.assertFails(d, ["FAIL replicas/r2: a bundle that fleet.json does not list"])

    def test_a_published_checkpoint_of_another_history_is_not_consistent(self):
        # r1 published a checkpoint of size 4 over other entries, signed by its own key: a fork.
        other = [t_leaf(e) for e in build_entries(4, f"{FLEET_ORIGIN}/other")]
        forked = signed_checkpoint(SEED, 4, t_mth(other), f"{FLEET_ORIGIN}/r1")
        d, _ = self.fleet(published_notes={"r1": forked})
        rc, out, _ = self.run_fleet(d)
        self.assertEqual(rc, 1)
        fails = fail_lines(out)
        self.assertEqual(len(fails), 1, out)
        self.assertTrue(
            fails[0].startswith(
                "FAIL replica r1: the checkpoint it published (size 4) and its bundle's (size 9) are not consistent: "
            ),
            fails,
        )

    def test_a_published_checkpoint_signed_by_another_key_fails(self):
        leaves = [t_leaf(e) for e in build_entries(4, f"{FLEET_ORIGIN}/r1")]
        foreign = signed_checkpoint(THIRD_SEED, 4, t_mth(leaves), f"{FLEET_ORIGIN}/r1")
        d, _ = self.fleet(published_notes={"r1": foreign})
        rc, out, _ = self.run_fleet(d)
        self.assertEqual(rc, 1)
        fails = fail_lines(out)
        self.assertEqual(len(fails), 1, out)
        self.assertTrue(
            fails[0].startswith("FAIL replica r1: the checkpoint it published is not signed by the log's key"), fails
        )

    def test_a_bundle_smaller_than_its_published_checkpoint_fails(self):
        d, fleet = self.fleet({"r1": (4, 9)})
        # The replica published size 9 (its bundle holds 4): a rolled-back or replaced store.
        leaves = [t_leaf(e) for e in build_entries(9, f"{FLEET_ORIGIN}/r1")]
        shutil.rmtree(os.path.join(d, "replicas", "r1"))
        small, _ = self.fleet({"r1": (4, 4)})
        shutil.copytree(os.path.join(small, "replicas", "r1"), os.path.join(d, "replicas", "r1"))
        record = fleet["replicas"][0]
        record["size"] = 4
        record["published"] = {
            "size": 9, "note": signed_checkpoint(SEED, 9, t_mth(leaves), f"{FLEET_ORIGIN}/r1").decode(),
            "published_at": PUBLISHED_AT,
        }
        self.write_manifest(d, fleet)
        self.assertFails(
            d,
            ["FAIL replica r1: its bundle holds 4 entries, fewer than the checkpoint it published (size 9): "
             "the bundle is not of the log it published"],
            rids=("r1",),
        )

    def test_an_altered_entry_in_a_replicas_bundle_is_named_with_the_replica(self):
        d, _ = self.fleet()
        path = os.path.join(d, "replicas", "r2", "entries.jsonl")
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data.replace(b'"caller":"alice"', b'"caller":"alicf"', 1))
        rc, out, _ = self.run_fleet(d)
        self.assertEqual(rc, 1)
        fails = fail_lines(out)
        self.assertTrue(fails and all(line.startswith("FAIL replica r2: ") for line in fails), out)

    def test_replicas_must_have_distinct_ids_and_origins_and_a_vkey_each(self):
        d, fleet = self.fleet()
        fleet["replicas"][1]["origin"] = f"{FLEET_ORIGIN}/r1"
        self.write_manifest(d, fleet)
        rc, out, _ = self.run_fleet(d)
        self.assertIn(
            f"FAIL replica r2: its log's origin '{FLEET_ORIGIN}/r1' is replica r1's too: each replica signs its own "
            "log, under its own name",
            fail_lines(out),
        )
        d, fleet = self.fleet()
        fleet["replicas"].append(dict(fleet["replicas"][0]))
        self.write_manifest(d, fleet)
        rc, out, _ = self.run_fleet(d)
        self.assertEqual(fail_lines(out), ["FAIL replica r1: listed twice in fleet.json"])
        d, _ = self.fleet()
        self.assertFails(
            d,
            [f"FAIL replica r2: no --vkey given for its log '{FLEET_ORIGIN}/r2': pass the replica's first verifier "
             "key (govgate vkey on the replica, checked with its operator)"],
            rids=("r1",),
        )

    def test_not_a_fleet_bundle(self):
        d, _ = self.fleet()
        os.remove(os.path.join(d, "fleet.json"))
        rc, out, _ = self.run_fleet(d)
        self.assertEqual(rc, 1)
        self.assertEqual(fail_lines(out), [f"FAIL fleet.json: missing: {d} is not a fleet bundle (govgate export --fleet)"])
        rc, _, err = run("fleet", "--vkey", self.vkey("r1"), "--vkey", self.vkey("r1"), d)
        self.assertEqual(rc, 2)
        self.assertIn("two --vkey name the log", err)
