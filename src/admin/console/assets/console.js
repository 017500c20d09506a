// govgate console: the little the pages do in the browser. The review
// queue reloads when the queue changes (polled every 2 s); a review page
// takes keys for a reviewer working through a queue; a decision page
// checks its receipt here, with WebCrypto, trusting nothing the gateway
// computed (docs/audit-format.md section 5, C2SP signed-note and
// tlog-proof, RFC 9162 section 2.1.3.2).
"use strict";

function pollQueue() {
  const state = document.getElementById("queue-state");
  if (!state) return;
  const seen = state.dataset.fingerprint;
  const url = "/console/reviews/state" + window.location.search;
  window.setInterval(async () => {
    try {
      const answer = await fetch(url, { credentials: "same-origin" });
      if (!answer.ok) return;
      const now = await answer.json();
      if (now.fingerprint !== seen) window.location.reload();
    } catch (_) {
      // The next poll tries again.
    }
  }, 2000);
}

function reviewKeys() {
  if (!document.getElementById("form-approve")) return;
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement) return;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "a") {
      event.preventDefault();
      document.getElementById("form-approve").requestSubmit();
    } else if (event.key === "r") {
      event.preventDefault();
      document.getElementById("reason-reject").focus();
    } else if (event.key === "n") {
      event.preventDefault();
      window.location.assign("/console/reviews");
    }
  });
}

function fromBase64(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function sha256(...parts) {
  const length = parts.reduce((sum, part) => sum + part.length, 0);
  const joined = new Uint8Array(length);
  let at = 0;
  for (const part of parts) {
    joined.set(part, at);
    at += part.length;
  }
  return new Uint8Array(await crypto.subtle.digest("SHA-256", joined));
}

function same(a, b) {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

// A signed-note verifier key: name+hex key id+base64(0x01 || Ed25519 key).
async function parseKey(vkey) {
  // The name holds no "+"; the base64 key may.
  const text = vkey.trim();
  const first = text.indexOf("+");
  const second = text.indexOf("+", first + 1);
  if (first < 1 || second < 0) throw new Error("the key is not name+id+key");
  const name = text.slice(0, first);
  const idHex = text.slice(first + 1, second);
  const encoded = text.slice(second + 1);
  const key = fromBase64(encoded);
  if (key.length !== 33 || key[0] !== 1) throw new Error("the key is not an Ed25519 key");
  const encoder = new TextEncoder();
  const id = (await sha256(encoder.encode(name), new Uint8Array([0x0a]), key)).slice(0, 4);
  if (toHex(id) !== idHex) throw new Error("the key's id does not match its key");
  return { name, id, raw: key.slice(1) };
}

// The receipt: index, inclusion path, and the signed checkpoint note.
function parseReceipt(text) {
  const lines = text.replace(/\r\n/g, "\n").split("\n");
  if (lines[0] !== "c2sp.org/tlog-proof@v1") throw new Error("not a c2sp.org/tlog-proof@v1 receipt");
  const index = lines[1].match(/^index (\d+)$/);
  if (!index) throw new Error("the receipt has no index line");
  let at = 2;
  if (lines[at] && lines[at].startsWith("extra ")) at++;
  const path = [];
  while (at < lines.length && lines[at] !== "") path.push(fromBase64(lines[at++]));
  const note = lines.slice(at + 1).join("\n");
  return { index: Number(index[1]), path, note };
}

// The note's body, checked against the key's signature line.
async function openNote(note, key) {
  const split = note.indexOf("\n\n");
  if (split < 0) throw new Error("the checkpoint has no signature");
  const body = note.slice(0, split + 1);
  const text = new TextEncoder();
  const verifier = await crypto.subtle.importKey("raw", key.raw, { name: "Ed25519" }, false, ["verify"]);
  for (const line of note.slice(split + 2).split("\n")) {
    const parts = line.split(" ");
    if (parts.length !== 3 || parts[0] !== "\u2014" || parts[1] !== key.name) continue;
    const signature = fromBase64(parts[2]);
    if (signature.length !== 68 || !same(signature.slice(0, 4), key.id)) continue;
    if (await crypto.subtle.verify({ name: "Ed25519" }, verifier, signature.slice(4), text.encode(body))) {
      const [origin, size, root] = body.split("\n");
      if (origin !== key.name) throw new Error("the checkpoint is of another log");
      return { size: Number(size), root: fromBase64(root) };
    }
    throw new Error("the checkpoint's signature does not verify with this key");
  }
  throw new Error("the checkpoint is not signed by this key");
}

// RFC 9162 section 2.1.3.2: the root the inclusion path leads to.
async function includedUnder(leaf, index, size, path, root) {
  if (index >= size) return false;
  let fn = index;
  let sn = size - 1;
  let hash = leaf;
  const node = new Uint8Array([1]);
  for (const sibling of path) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      hash = await sha256(node, sibling, hash);
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      hash = await sha256(node, hash, sibling);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && same(hash, root);
}

async function verifyReceipt() {
  const result = document.getElementById("verify-result");
  result.className = "";
  result.textContent = "checking...";
  try {
    const key = await parseKey(document.getElementById("vkey").value);
    const receipt = parseReceipt(document.getElementById("receipt").value);
    const checkpoint = await openNote(receipt.note, key);
    const entryText = document.getElementById("entry-bytes").value;
    const bytes = new TextEncoder().encode(entryText);
    const leaf = await sha256(new Uint8Array([0]), bytes);
    if (!(await includedUnder(leaf, receipt.index, checkpoint.size, receipt.path, checkpoint.root))) {
      throw new Error("the entry is not included under the checkpoint's root at index " + receipt.index);
    }
    const entry = JSON.parse(entryText);
    if (entry.seq !== receipt.index) throw new Error("the entry's seq is not the receipt's index");
    const expected = document.getElementById("expected-id").value;
    if (entry.decision_id !== expected) throw new Error("the entry is not decision " + expected);
    result.className = "notice done";
    result.textContent = "Verified in this browser: entry " + receipt.index + " is in the log " + key.name +
      " under its checkpoint of size " + checkpoint.size + ", signed by key " + toHex(key.id) + ".";
  } catch (error) {
    result.className = "notice problem";
    result.textContent = "Not verified: " + error.message;
  }
}

function receiptCheck() {
  const button = document.getElementById("verify");
  if (button) button.addEventListener("click", verifyReceipt);
}

// A report job's page reloads itself while the job runs.
function followReport() {
  const state = document.getElementById("report-state");
  if (!state || state.dataset.state !== "running") return;
  window.setTimeout(() => window.location.reload(), 1000);
}

pollQueue();
reviewKeys();
receiptCheck();
followReport();
