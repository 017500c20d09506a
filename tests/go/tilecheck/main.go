// Command tilecheck reads a govgate ledger as a standard C2SP tlog-tiles
// client would, with Go's golang.org/x/mod/sumdb/note and sumdb/tlog only,
// and checks:
//
//   - the served checkpoint's signature (note.Open with the log's vkey);
//   - every tile a proof needs, authenticated against that checkpoint's
//     root (tlog.TileHashReader), and the root recomputed from them;
//   - every entry bundle: each entry hashes to its level 0 tile hash;
//   - a receipt (C2SP tlog-proof): its own proof against its own signed
//     checkpoint, and the record's inclusion in the current tree from the
//     tiles (tlog.ProveRecord, tlog.CheckRecord);
//   - consistency of an older signed checkpoint with the current one
//     (tlog.ProveTree, tlog.CheckTree), and the older tree's own partial
//     tiles.
//
// Usage: tilecheck PREFIX_URL VKEY OLD_CHECKPOINT_FILE RECEIPT_FILE ENTRY_FILE
// Prints "ok ..." and exits 0, or prints what failed and exits 1.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// tileHeight is fixed by C2SP tlog-tiles: 256 hashes per tile.
const tileHeight = 8

func main() {
	if len(os.Args) != 6 {
		fail("usage: tilecheck PREFIX_URL VKEY OLD_CHECKPOINT_FILE RECEIPT_FILE ENTRY_FILE")
	}
	prefix := strings.TrimSuffix(os.Args[1], "/")
	verifier, err := note.NewVerifier(os.Args[2])
	check(err, "parsing the verifier key")
	verifiers := note.VerifierList(verifier)

	current := openCheckpoint(get(prefix+"/checkpoint"), verifiers)
	reader := &tileReader{prefix: prefix}
	hashes := tlog.TileHashReader(current.tree, reader)

	// The root from the tiles equals the signed root.
	root, err := tlog.TreeHash(current.tree.N, hashes)
	check(err, "computing the root from tiles")
	if root != current.tree.Hash {
		fail("the tiles hash to %v, the checkpoint says %v", root, current.tree.Hash)
	}

	// Every entry of every bundle hashes to its leaf hash.
	for start := int64(0); start < current.tree.N; start += 256 {
		width := current.tree.N - start
		if width > 256 {
			width = 256
		}
		entries := bundle(prefix, start/256, int(width))
		indexes := make([]int64, len(entries))
		for i := range entries {
			indexes[i] = tlog.StoredHashIndex(0, start+int64(i))
		}
		leaves, err := hashes.ReadHashes(indexes)
		check(err, "reading leaf hashes")
		for i, entry := range entries {
			if tlog.RecordHash(entry) != leaves[i] {
				fail("entry %d of the bundle does not hash to its leaf", start+int64(i))
			}
		}
	}

	// A receipt: its own proof, then inclusion in the current tree.
	receiptText, err := os.ReadFile(os.Args[4])
	check(err, "reading the receipt")
	entry, err := os.ReadFile(os.Args[5])
	check(err, "reading the entry")
	index, path, receiptNote := parseReceipt(string(receiptText))
	receiptTree := openCheckpoint([]byte(receiptNote), verifiers).tree
	leaf := tlog.RecordHash(entry)
	check(tlog.CheckRecord(path, receiptTree.N, receiptTree.Hash, index, leaf), "checking the receipt's own proof")
	proof, err := tlog.ProveRecord(current.tree.N, index, hashes)
	check(err, "proving the record from tiles")
	check(tlog.CheckRecord(proof, current.tree.N, current.tree.Hash, index, leaf), "checking the record in the current tree")
	inBundle := bundle(prefix, index/256, bundleWidth(index, current.tree.N))[index%256]
	if !bytes.Equal(inBundle, entry) {
		fail("the receipt's entry differs from entry %d of its bundle", index)
	}

	// An older checkpoint: consistent with the current one, and its own
	// (partial) tiles still served and hashing to its root.
	oldText, err := os.ReadFile(os.Args[3])
	check(err, "reading the old checkpoint")
	old := openCheckpoint(oldText, verifiers)
	if old.origin != current.origin {
		fail("origins differ: %q, %q", old.origin, current.origin)
	}
	treeProof, err := tlog.ProveTree(current.tree.N, old.tree.N, hashes)
	check(err, "proving consistency from tiles")
	check(tlog.CheckTree(treeProof, current.tree.N, current.tree.Hash, old.tree.N, old.tree.Hash), "checking consistency")
	oldRoot, err := tlog.TreeHash(old.tree.N, tlog.TileHashReader(old.tree, reader))
	check(err, "computing the old root from its tiles")
	if oldRoot != old.tree.Hash {
		fail("the old tree's tiles do not hash to its root")
	}
	fmt.Printf("ok size=%d old=%d record=%d tiles=%d\n", current.tree.N, old.tree.N, index, reader.fetched)
}

type checkpoint struct {
	origin string
	tree   tlog.Tree
}

// openCheckpoint verifies a signed note and parses its C2SP checkpoint body.
func openCheckpoint(text []byte, verifiers note.Verifiers) checkpoint {
	n, err := note.Open(text, verifiers)
	check(err, "verifying the checkpoint's signature")
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 || lines[len(lines)-1] != "" {
		fail("a checkpoint body has origin, size and root lines")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	check(err, "parsing the checkpoint size")
	raw, err := base64.StdEncoding.DecodeString(lines[2])
	check(err, "parsing the checkpoint root")
	var root tlog.Hash
	if len(raw) != len(root) {
		fail("the checkpoint root is not 32 bytes")
	}
	copy(root[:], raw)
	return checkpoint{origin: lines[0], tree: tlog.Tree{N: size, Hash: root}}
}

// parseReceipt reads a C2SP tlog-proof: header, index, hashes, blank line, note.
func parseReceipt(text string) (int64, tlog.RecordProof, string) {
	head, signed, found := strings.Cut(text, "\n\n")
	if !found {
		fail("a tlog-proof has a blank line before its checkpoint")
	}
	lines := strings.Split(head, "\n")
	if len(lines) < 2 || lines[0] != "c2sp.org/tlog-proof@v1" || !strings.HasPrefix(lines[1], "index ") {
		fail("a tlog-proof starts with its header and index lines")
	}
	index, err := strconv.ParseInt(strings.TrimPrefix(lines[1], "index "), 10, 64)
	check(err, "parsing the proof index")
	var proof tlog.RecordProof
	for _, line := range lines[2:] {
		h, err := tlog.ParseHash(line)
		check(err, "parsing a proof hash")
		proof = append(proof, h)
	}
	return index, proof, signed
}

// tileReader fetches C2SP tiles: tile/<L>/<N>[.p/<W>], no height element
// (Go's own Tile.Path has one, for its variable-height sumdb tiles).
type tileReader struct {
	prefix  string
	fetched int
}

func (r *tileReader) Height() int { return tileHeight }

func (r *tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	data := make([][]byte, len(tiles))
	for i, t := range tiles {
		data[i] = get(r.prefix + "/" + tilePath(strconv.Itoa(t.L), t.N, t.W))
		r.fetched++
	}
	return data, nil
}

func (r *tileReader) SaveTiles([]tlog.Tile, [][]byte) {}

// tilePath is the C2SP path of tile n at level (or "entries") of width w.
func tilePath(level string, n int64, w int) string {
	elements := fmt.Sprintf("%03d", n%1000)
	for n >= 1000 {
		n /= 1000
		elements = fmt.Sprintf("x%03d/%s", n%1000, elements)
	}
	path := "tile/" + level + "/" + elements
	if w < 256 {
		path += fmt.Sprintf(".p/%d", w)
	}
	return path
}

// bundleWidth is the width of the bundle holding entry index in a tree of size n.
func bundleWidth(index, n int64) int {
	if end := (index/256 + 1) * 256; end <= n {
		return 256
	}
	return int(n % 256)
}

// bundle fetches entry bundle n of width w and splits its uint16-prefixed entries.
func bundle(prefix string, n int64, w int) [][]byte {
	data := get(prefix + "/" + tilePath("entries", n, w))
	var entries [][]byte
	for len(data) > 0 {
		if len(data) < 2 {
			fail("entry bundle %d: truncated length", n)
		}
		length := int(binary.BigEndian.Uint16(data))
		if len(data) < 2+length {
			fail("entry bundle %d: truncated entry", n)
		}
		entries = append(entries, data[2:2+length])
		data = data[2+length:]
	}
	if len(entries) != w {
		fail("entry bundle %d has %d entries, want %d", n, len(entries), w)
	}
	return entries
}

func get(url string) []byte {
	resp, err := http.Get(url)
	check(err, "GET "+url)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	check(err, "reading "+url)
	if resp.StatusCode != http.StatusOK {
		fail("GET %s: %s: %s", url, resp.Status, body)
	}
	return body
}

func check(err error, doing string) {
	if err != nil {
		fail("%s: %v", doing, err)
	}
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "tilecheck: "+format+"\n", args...)
	os.Exit(1)
}
