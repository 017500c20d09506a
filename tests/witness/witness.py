#!/usr/bin/env python3
"""A C2SP tlog-witness for the test suite, written from the specs alone
(c2sp.org/tlog-witness, c2sp.org/tlog-cosignature, c2sp.org/signed-note,
c2sp.org/tlog-checkpoint, RFC 6962/9162 consistency proofs). It shares no
code with the gateway, and is what the gateway's witnessing is tested
against.

    python3 witness.py --name NAME --seed HEX --logs FILE --state FILE [--listen 127.0.0.1:0]

--logs names a file of the logs' signed-note verifier keys (type 0x01), one
a line, read again for every request (a missing file trusts no log); a
key's name is the origin the witness accepts it for. The first line printed on stdout is
`listening http://HOST:PORT vkey VKEY` (the witness's cosignature/v1
key). State (the latest cosigned size and root per origin) is kept in
--state, written before a cosignature is returned. Needs PyNaCl.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.server
import json
import os
import struct
import sys
import threading
import time

import nacl.exceptions
import nacl.signing

EM_DASH = "\u2014"


def key_id(name: str, kind: int, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([kind]) + public).digest()[:4]


def parse_vkey(vkey: str, kind: int) -> tuple[str, bytes, bytes]:
    name, id_hex, key_b64 = vkey.strip().split("+", 2)
    raw = base64.b64decode(key_b64, validate=True)
    if len(raw) != 33 or raw[0] != kind:
        raise ValueError("not an Ed25519 key of type %#x" % kind)
    public = raw[1:]
    if key_id(name, kind, public).hex() != id_hex:
        raise ValueError("key ID does not match")
    return name, key_id(name, kind, public), public


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def consistent(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: list[bytes]) -> bool:
    """RFC 9162 section 2.1.4.2."""
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0 or old_size > new_size:
        return False
    if old_size & (old_size - 1) == 0:
        proof = [old_root] + proof
    if not proof:
        return False
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node(c, fr)
            sr = node(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


class Refusal(Exception):
    def __init__(self, status: int, text: str, content_type: str = "text/plain; charset=utf-8"):
        super().__init__(text)
        self.status, self.text, self.content_type = status, text, content_type


class Witness:
    def __init__(self, name: str, seed: bytes, logs_file: str, state_file: str):
        self.name = name
        self.key = nacl.signing.SigningKey(seed)
        self.public = bytes(self.key.verify_key)
        self.id = key_id(name, 0x04, self.public)
        self.logs_file = logs_file
        self.state_file = state_file
        self.lock = threading.Lock()
        self.state = {}
        if os.path.exists(state_file):
            with open(state_file) as f:
                self.state = json.load(f)

    def vkey(self) -> str:
        return "%s+%s+%s" % (self.name, self.id.hex(), base64.b64encode(b"\x04" + self.public).decode())

    def logs(self) -> dict:
        logs = {}
        try:
            with open(self.logs_file) as f:
                vkeys = [line.strip() for line in f if line.strip()]
        except FileNotFoundError:
            vkeys = []
        for vkey in vkeys:
            origin, kid, public = parse_vkey(vkey, 0x01)
            logs.setdefault(origin, []).append((kid, public))
        return logs

    def save(self) -> None:
        temp = self.state_file + ".tmp"
        with open(temp, "w") as f:
            json.dump(self.state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, self.state_file)

    def add_checkpoint(self, request: bytes) -> str:
        try:
            text = request.decode("utf-8")
        except UnicodeDecodeError:
            raise Refusal(400, "not UTF-8")
        lines = text.split("\n")
        if not lines[0].startswith("old "):
            raise Refusal(400, "no old size line")
        old_text = lines[0][4:]
        if not old_text.isdigit() or (len(old_text) > 1 and old_text[0] == "0"):
            raise Refusal(400, "bad old size")
        old = int(old_text)
        proof = []
        i = 1
        while i < len(lines) and lines[i] != "":
            try:
                h = base64.b64decode(lines[i], validate=True)
            except ValueError:
                raise Refusal(400, "bad proof line")
            if len(h) != 32:
                raise Refusal(400, "bad proof line")
            proof.append(h)
            i += 1
        if i >= len(lines) or len(proof) > 63:
            raise Refusal(400, "malformed request")
        note = "\n".join(lines[i + 1 :])
        # signed-note: body, blank line, signature lines.
        split = note.find("\n\n")
        if split < 0 or not note.endswith("\n"):
            raise Refusal(400, "not a signed note")
        body = note[: split + 1]
        signatures = note[split + 2 :].split("\n")[:-1]
        body_lines = body.split("\n")[:-1]
        if len(body_lines) < 3:
            raise Refusal(400, "not a checkpoint")
        origin, size_text, root_b64 = body_lines[:3]
        if not size_text.isdigit() or (len(size_text) > 1 and size_text[0] == "0"):
            raise Refusal(400, "bad checkpoint size")
        size = int(size_text)
        root = base64.b64decode(root_b64, validate=True)
        if len(root) != 32:
            raise Refusal(400, "bad root")
        keys = self.logs().get(origin)
        if keys is None:
            raise Refusal(404, "unknown origin")
        if not any(self.signed_by(body, signatures, origin, kid, public) for kid, public in keys):
            raise Refusal(403, "no valid signature from a trusted key")
        if old > size:
            raise Refusal(400, "old size larger than the checkpoint")
        with self.lock:
            known = self.state.get(origin)
            known_size = known["size"] if known else 0
            if old != known_size:
                raise Refusal(409, "%d\n" % known_size, "text/x.tlog.size")
            if old == 0:
                if proof:
                    raise Refusal(422, "a proof from size 0 must be empty")
            elif old == size:
                if base64.b64decode(known["root"]) != root or proof:
                    raise Refusal(409, "a different root at the size already cosigned")
            elif not consistent(old, size, base64.b64decode(known["root"]), root, proof):
                raise Refusal(422, "the consistency proof does not verify")
            self.state[origin] = {"size": size, "root": root_b64}
            self.save()
        now = int(time.time())
        message = ("cosignature/v1\ntime %d\n" % now).encode() + body.encode()
        signature = self.key.sign(message).signature
        blob = self.id + struct.pack(">Q", now) + signature
        return "%s %s %s\n" % (EM_DASH, self.name, base64.b64encode(blob).decode())

    @staticmethod
    def signed_by(body: str, signatures: list[str], name: str, kid: bytes, public: bytes) -> bool:
        for line in signatures:
            parts = line.split(" ")
            if len(parts) != 3 or parts[0] != EM_DASH or parts[1] != name:
                continue
            try:
                blob = base64.b64decode(parts[2], validate=True)
            except ValueError:
                continue
            if len(blob) != 68 or blob[:4] != kid:
                continue
            try:
                nacl.signing.VerifyKey(public).verify(body.encode(), blob[4:])
                return True
            except nacl.exceptions.BadSignatureError:
                continue
        return False


def serve(witness: Witness, host: str, port: int) -> None:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/add-checkpoint":
                self.answer(404, "not found\n", "text/plain")
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > 1 << 16:
                self.answer(400, "too large\n", "text/plain")
                return
            try:
                cosignature = witness.add_checkpoint(self.rfile.read(length))
            except Refusal as refusal:
                self.answer(refusal.status, refusal.text, refusal.content_type)
                return
            self.answer(200, cosignature, "text/plain; charset=utf-8")

        def answer(self, status: int, text: str, content_type: str) -> None:
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args) -> None:
            sys.stderr.write("witness: " + (format % args) + "\n")

    server = http.server.ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    host, port = server.server_address[:2]
    print("listening http://%s:%d vkey %s" % (host, port, witness.vkey()), flush=True)
    server.serve_forever()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--seed", required=True, help="32-byte Ed25519 seed, hex")
    parser.add_argument("--logs", required=True, help="file of trusted log verifier keys")
    parser.add_argument("--state", required=True)
    parser.add_argument("--listen", default="127.0.0.1:0")
    args = parser.parse_args()
    host, port = args.listen.rsplit(":", 1)
    witness = Witness(args.name, bytes.fromhex(args.seed), args.logs, args.state)
    serve(witness, host, int(port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
