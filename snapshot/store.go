// Package snapshot keeps cluster snapshots in a content-addressed,
// deduplicating store.
//
// A cluster snapshot is a few large files (one QEMU migration file per VM,
// written with mapped-ram, so RAM pages sit at fixed offsets and untouched
// pages are holes) plus the controller's state. Snapshots of one run share
// most of their pages, so the store cuts every file into ChunkSize blocks,
// keeps each distinct block once under its SHA-256, and keeps no block at
// all for zeros and holes. A Manifest names a snapshot's blocks; its ID is
// the hash of its content, so a manifest cannot change without the change
// showing.
//
// On disk a store is a directory:
//
//	DIR/manifests/<id>.json          one per snapshot
//	DIR/chunks/<2 hex>/<64 hex>      one per distinct non-zero block
//	DIR/lock, DIR/gc-generation      coordination between processes
//
// Put and Materialize may run in several processes at once; GC and Remove
// wait for them (flock on DIR/lock), so GC never deletes a block that a Put
// has written but not yet named in its manifest.
package snapshot

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/detvm/detvm/internal/atomicfile"

	"golang.org/x/sys/unix"
)

// ChunkSize is the unit of deduplication: files are cut into blocks of this
// size at fixed offsets, so a page that did not change between snapshots
// lands in the same block with the same hash.
const ChunkSize = 64 << 10

// idLen is the length of a snapshot ID in hex digits; minPrefix the
// shortest prefix Get accepts.
const (
	idLen     = 16
	minPrefix = 4
)

// The hint every integrity error ends with.
const damagedHint = "the store is damaged; re-run to recreate the snapshot"

// Errors callers can test for with errors.Is: the user named a snapshot
// that is not there, named it too vaguely, or asked to remove a parent.
var (
	ErrBadID       = errors.New("not a snapshot ID")
	ErrNotFound    = errors.New("no such snapshot")
	ErrAmbiguous   = errors.New("ambiguous snapshot ID")
	ErrHasChildren = errors.New("snapshot has children")
)

// Store is a snapshot store in a directory: DIR/manifests/<id>.json and
// DIR/chunks/<2 hex>/<64 hex>. A Store may be used from several goroutines.
type Store struct {
	dir string

	mu     sync.Mutex
	known  map[[32]byte]*pending // chunks on disk (nil) or being written by a Put of this Store
	loaded bool                  // known reflects chunks/ as of generation gen
	gen    string

	dirs [256]atomic.Bool // chunks/<xx> exists
	tmpN atomic.Uint64    // names temp files
}

// pending is a chunk one Put is writing; other Puts that need the same chunk
// wait for it before they write a manifest that names it.
type pending struct {
	done chan struct{}
	err  error
}

// Segment is a stretch of a run with one seed: from FromEpoch on, everything
// random in the guests derives from Seed. A branched run has several.
type Segment struct {
	FromEpoch uint64 `json:"from_epoch"`
	Seed      uint64 `json:"seed"`
}

// File is one file of a snapshot, as a list of chunk hashes.
type File struct {
	Name string `json:"name"` // base name, e.g. "node-1.mig"
	Size int64  `json:"size"` // apparent size
	// SHA256 is the file's hash list: SHA-256 over its size and its
	// chunks' hashes (32 zero bytes for a zero chunk). Every chunk is
	// verified against its own hash, so this names the whole content
	// without hashing the zeros of a sparse 256 MB file twice per snapshot
	// (measured: that was most of a Put's CPU time).
	SHA256 string   `json:"sha256"`
	Chunks []string `json:"chunks"` // per ChunkSize block: hex SHA-256, or "" for zeros or a hole
}

// Manifest describes one cluster snapshot. ID is derived from the rest
// (except Created and NewBytes), so equal snapshots have equal IDs.
type Manifest struct {
	ID        string            `json:"id"` // first 16 hex digits of the SHA-256 of the canonical JSON without ID, Created, NewBytes
	Parent    string            `json:"parent,omitempty"`
	Epoch     uint64            `json:"epoch"`
	VirtualNS uint64            `json:"virtual_ns"`
	Segments  []Segment         `json:"segments"`
	Scenario  string            `json:"scenario"`
	Kernel    string            `json:"kernel"`
	Images    map[string]string `json:"images"`
	QEMU      string            `json:"qemu"`
	Files     []File            `json:"files"`
	State     json.RawMessage   `json:"state,omitempty"`   // controller state; opaque here
	Bytes     int64             `json:"bytes"`             // sum of File.Size
	NewBytes  int64             `json:"new_bytes"`         // chunk bytes the Put that stored it added
	Created   string            `json:"created,omitempty"` // RFC3339 wall time, informational only
}

// IntegrityError says that the store's content does not match what a
// manifest says it is: a chunk is missing, cut short or altered, a file
// does not hash to its recorded SHA-256, or a manifest was edited.
type IntegrityError struct {
	Snapshot string // snapshot ID
	File     string // file name within the snapshot; "" when the manifest itself is at fault
	Chunk    int    // chunk index within File; -1 when the fault is not one chunk's
	Offset   int64  // offset of Chunk within File
	Path     string // the store file at fault: a chunk or the manifest
	Problem  string // what is wrong
	Err      error  // underlying error, if any
}

func (e *IntegrityError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "snapshot %s: ", e.Snapshot)
	switch {
	case e.File != "" && e.Chunk >= 0:
		fmt.Fprintf(&b, "%s chunk %d (offset %d): ", e.File, e.Chunk, e.Offset)
	case e.File != "":
		fmt.Fprintf(&b, "%s: ", e.File)
	}
	b.WriteString(e.Problem)
	if e.Path != "" {
		b.WriteString(": " + e.Path)
	}
	b.WriteString("; " + damagedHint)
	return b.String()
}

func (e *IntegrityError) Unwrap() error { return e.Err }

// Open opens the store in dir, creating its directories if missing.
func Open(dir string) (*Store, error) {
	dir = filepath.Clean(dir)
	for _, d := range []string{"manifests", "chunks"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("snapshot store: %w", err)
		}
	}
	return &Store{dir: dir}, nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) manifestPath(id string) string {
	return filepath.Join(s.dir, "manifests", id+".json")
}

func (s *Store) chunkPath(sum string) string {
	return filepath.Join(s.dir, "chunks", sum[:2], sum)
}

// lock takes a shared or exclusive flock on DIR/lock and returns its release.
// Put and Materialize share it; GC and Remove hold it alone.
func (s *Store) lock(how int) (func(), error) {
	path := filepath.Join(s.dir, "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil && how == unix.LOCK_SH && (errors.Is(err, fs.ErrPermission) || errors.Is(err, unix.EROFS)) {
		// Reading a store one may not write: share the lock if it exists;
		// if not, nobody can be collecting garbage there either.
		if f, err = os.Open(path); err != nil {
			return func() {}, nil
		}
	}
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}

// computeID returns the ID that m's content hashes to: the first 16 hex
// digits of the SHA-256 of m's JSON with ID, Created and NewBytes cleared.
func computeID(m *Manifest) (string, error) {
	c := *m
	c.ID, c.Created, c.NewBytes = "", "", 0
	b, err := json.Marshal(&c)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:idLen], nil
}

// Get reads the manifest with the given ID or unique ID prefix (at least 4
// hex digits) and checks that its content still hashes to its ID.
func (s *Store) Get(id string) (*Manifest, error) {
	full, err := s.resolve(id)
	if err != nil {
		return nil, err
	}
	return s.read(full)
}

// ids lists the IDs of the manifests on disk, sorted.
func (s *Store) ids() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, "manifests"))
	if err != nil {
		return nil, fmt.Errorf("snapshot store: %w", err)
	}
	var ids []string
	for _, e := range ents {
		if id, ok := strings.CutSuffix(e.Name(), ".json"); ok && isHex(id) && len(id) == idLen {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// resolve turns an ID or unique prefix into a full ID that has a manifest.
func (s *Store) resolve(id string) (string, error) {
	id = strings.ToLower(id)
	if len(id) < minPrefix || len(id) > idLen || !isHex(id) {
		return "", fmt.Errorf("snapshot %q: %w: want %d to %d hex digits of a snapshot ID", id, ErrBadID, minPrefix, idLen)
	}
	if len(id) == idLen {
		if _, err := os.Stat(s.manifestPath(id)); err == nil {
			return id, nil
		}
	}
	ids, err := s.ids()
	if err != nil {
		return "", err
	}
	var match []string
	for _, x := range ids {
		if strings.HasPrefix(x, id) {
			match = append(match, x)
		}
	}
	switch len(match) {
	case 1:
		return match[0], nil
	case 0:
		if len(ids) == 0 {
			return "", fmt.Errorf("snapshot %s: %w in %s: the store is empty", id, ErrNotFound, s.dir)
		}
		return "", fmt.Errorf("snapshot %s: %w in %s; it has %s", id, ErrNotFound, s.dir, listIDs(ids))
	}
	return "", fmt.Errorf("snapshot %s: %w: it matches %s; give more digits", id, ErrAmbiguous, listIDs(match))
}

// listIDs joins ids for an error message, at most 20 of them.
func listIDs(ids []string) string {
	const most = 20
	if len(ids) <= most {
		return strings.Join(ids, ", ")
	}
	return strings.Join(ids[:most], ", ") + fmt.Sprintf(" and %d more", len(ids)-most)
}

// read loads and checks the manifest stored under the full ID id.
func (s *Store) read(id string) (*Manifest, error) {
	path := s.manifestPath(id)
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("snapshot %s: %w in %s", id, ErrNotFound, s.dir)
		}
		return nil, fmt.Errorf("snapshot %s: %w", id, err)
	}
	return parseManifest(id, path, data)
}

// parseManifest decodes a manifest stored as path and checks it against id.
func parseManifest(id, path string, data []byte) (*Manifest, error) {
	bad := func(problem string, err error) error {
		return &IntegrityError{Snapshot: id, Chunk: -1, Path: path, Problem: problem, Err: err}
	}
	m := new(Manifest)
	if err := json.Unmarshal(data, m); err != nil {
		return nil, bad(fmt.Sprintf("manifest is not valid JSON (%v)", err), err)
	}
	got, err := computeID(m)
	if err != nil {
		return nil, bad(fmt.Sprintf("manifest cannot be encoded (%v)", err), err)
	}
	if got != id || m.ID != id {
		return nil, bad(fmt.Sprintf("manifest was modified (its content hashes to %s, its name says %s, its id field says %q)", got, id, m.ID), nil)
	}
	if err := m.check(); err != nil {
		return nil, bad("manifest is malformed: "+err.Error(), err)
	}
	return m, nil
}

// check validates what Materialize relies on: file names that stay inside
// the target directory, one well-formed chunk hash per block, sizes that add up.
func (m *Manifest) check() error {
	seen := map[string]bool{}
	var total int64
	for _, f := range m.Files {
		if err := checkName(f.Name); err != nil {
			return err
		}
		if seen[f.Name] {
			return fmt.Errorf("file %q appears twice", f.Name)
		}
		seen[f.Name] = true
		if f.Size < 0 || int64(len(f.Chunks)) != chunkCount(f.Size) {
			return fmt.Errorf("file %s: %d chunks for %d bytes, want %d", f.Name, len(f.Chunks), f.Size, chunkCount(f.Size))
		}
		if len(f.SHA256) != 64 || !isHex(f.SHA256) {
			return fmt.Errorf("file %s: sha256 %q is not 64 hex digits", f.Name, f.SHA256)
		}
		for i, c := range f.Chunks {
			if c != "" && (len(c) != 64 || !isHex(c)) {
				return fmt.Errorf("file %s: chunk %d: %q is not 64 hex digits", f.Name, i, c)
			}
		}
		total += f.Size
	}
	if total != m.Bytes {
		return fmt.Errorf("bytes is %d, the files add up to %d", m.Bytes, total)
	}
	return nil
}

func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') || strings.ContainsRune(name, 0) {
		return fmt.Errorf("file name %q is not a plain base name", name)
	}
	return nil
}

func chunkCount(size int64) int64 { return (size + ChunkSize - 1) / ChunkSize }

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// List returns every manifest, sorted by (Epoch, ID). A manifest that
// cannot be read or fails its check is left out and named in the error;
// the others are returned even then.
func (s *Store) List() ([]*Manifest, error) {
	ids, err := s.ids()
	if err != nil {
		return nil, err
	}
	ms := make([]*Manifest, 0, len(ids))
	var errs []error
	for _, id := range ids {
		m, err := s.read(id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ms = append(ms, m)
	}
	sort.Slice(ms, func(i, j int) bool {
		if ms[i].Epoch != ms[j].Epoch {
			return ms[i].Epoch < ms[j].Epoch
		}
		return ms[i].ID < ms[j].ID
	})
	return ms, errors.Join(errs...)
}

// Remove deletes the manifest id (or unique prefix). It refuses when other
// manifests name it as their Parent, unless force; their Parent then names
// a snapshot that is gone. Chunks stay until GC.
func (s *Store) Remove(id string, force bool) error {
	unlock, err := s.lock(unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer unlock()
	full, err := s.resolve(id)
	if err != nil {
		return err
	}
	if !force {
		ids, err := s.ids()
		if err != nil {
			return err
		}
		var children []string
		for _, other := range ids {
			if other == full {
				continue
			}
			var head struct {
				Parent string `json:"parent"`
			}
			// An unreadable manifest cannot be anyone's child that matters:
			// Get refuses it already.
			if data, err := os.ReadFile(s.manifestPath(other)); err == nil && json.Unmarshal(data, &head) == nil && head.Parent == full {
				children = append(children, other)
			}
		}
		if len(children) > 0 {
			return &ChildrenError{ID: full, Children: children}
		}
	}
	if err := os.Remove(s.manifestPath(full)); err != nil {
		return fmt.Errorf("snapshot %s: %w", full, err)
	}
	return atomicfile.SyncDir(filepath.Join(s.dir, "manifests"))
}

// ChildrenError is Remove's refusal to remove a snapshot that other
// snapshots name as their parent. errors.Is(err, ErrHasChildren) holds.
type ChildrenError struct {
	ID       string   // the snapshot Remove was asked to remove
	Children []string // the snapshots whose Parent it is
}

func (e *ChildrenError) Error() string {
	return fmt.Sprintf("snapshot %s is the parent of %s; remove those first, or force the removal (they keep naming it as parent)", e.ID, listIDs(e.Children))
}

// Is makes errors.Is(err, ErrHasChildren) true.
func (e *ChildrenError) Is(target error) bool { return target == ErrHasChildren }

// GC deletes every chunk that no manifest names, and temp files left by
// interrupted Puts, and returns how many chunks and how many bytes it
// freed. It refuses to delete anything while a manifest is unreadable,
// because it cannot tell which chunks that manifest needs.
func (s *Store) GC() (chunks int, bytes int64, err error) {
	unlock, err := s.lock(unix.LOCK_EX)
	if err != nil {
		return 0, 0, err
	}
	defer unlock()
	ids, err := s.ids()
	if err != nil {
		return 0, 0, err
	}
	used := map[[32]byte]bool{}
	for _, id := range ids {
		path := s.manifestPath(id)
		var body struct {
			Files []struct {
				Chunks []string `json:"chunks"`
			} `json:"files"`
		}
		data, err := os.ReadFile(path)
		if err == nil {
			err = json.Unmarshal(data, &body)
		}
		if err != nil {
			return 0, 0, fmt.Errorf("gc: %s cannot be read (%v): nothing was deleted; remove or repair that manifest first", path, err)
		}
		// A manifest that was modified still names chunks: keep them, so it
		// can be inspected; GC is conservative.
		for _, f := range body.Files {
			for _, c := range f.Chunks {
				if sum, ok := parseSum(c); ok {
					used[sum] = true
				}
			}
		}
	}
	// Other processes' chunk caches must not outlive this GC: bump the
	// generation before deleting anything, so even a GC that dies halfway
	// invalidates them.
	if err := s.bumpGeneration(); err != nil {
		return 0, 0, err
	}
	s.mu.Lock()
	s.loaded = false
	s.mu.Unlock()
	err = s.walkChunks(func(path, name string, d fs.DirEntry) error {
		sum, ok := parseSum(name)
		if ok && used[sum] {
			return nil
		}
		if !ok && !strings.Contains(name, ".tmp") {
			return nil // not ours; leave it
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		bytes += info.Size()
		if ok {
			chunks++
		}
		return nil
	})
	if err != nil {
		return chunks, bytes, fmt.Errorf("gc: %w", err)
	}
	// Manifest temp files of Puts that died.
	ents, err := os.ReadDir(filepath.Join(s.dir, "manifests"))
	if err != nil {
		return chunks, bytes, fmt.Errorf("gc: %w", err)
	}
	for _, e := range ents {
		if name := e.Name(); strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp") {
			if info, err := e.Info(); err == nil && os.Remove(filepath.Join(s.dir, "manifests", name)) == nil {
				bytes += info.Size()
			}
		}
	}
	return chunks, bytes, nil
}

// walkChunks calls fn for every file in chunks/<xx>/.
func (s *Store) walkChunks(fn func(path, name string, d fs.DirEntry) error) error {
	top := filepath.Join(s.dir, "chunks")
	subs, err := os.ReadDir(top)
	if err != nil {
		return err
	}
	for _, sub := range subs {
		if !sub.IsDir() {
			continue
		}
		dir := filepath.Join(top, sub.Name())
		ents, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if err := fn(filepath.Join(dir, e.Name()), e.Name(), e); err != nil {
				return err
			}
		}
	}
	return nil
}

// parseSum decodes a 64-hex chunk name.
func parseSum(name string) (sum [32]byte, ok bool) {
	if len(name) != 64 || !isHex(name) {
		return sum, false
	}
	_, err := hex.Decode(sum[:], []byte(name))
	return sum, err == nil
}

func (s *Store) generationPath() string { return filepath.Join(s.dir, "gc-generation") }

func (s *Store) readGeneration() (string, error) {
	b, err := os.ReadFile(s.generationPath())
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return strings.TrimSpace(string(b)), err
}

func (s *Store) bumpGeneration() error {
	old, err := s.readGeneration()
	if err != nil {
		return err
	}
	var n uint64
	fmt.Sscan(old, &n)
	return atomicfile.Write(s.generationPath(), []byte(fmt.Sprintln(n+1)), 0o644)
}

// DiskBytes returns the total size of the store's chunk files and
// manifests: what the store costs on disk.
func (s *Store) DiskBytes() (int64, error) {
	var total int64
	add := func(d fs.DirEntry) error {
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			total += info.Size()
		}
		return nil
	}
	err := s.walkChunks(func(_, _ string, d fs.DirEntry) error { return add(d) })
	if err != nil {
		return 0, fmt.Errorf("snapshot store: %w", err)
	}
	ents, err := os.ReadDir(filepath.Join(s.dir, "manifests"))
	if err != nil {
		return 0, fmt.Errorf("snapshot store: %w", err)
	}
	for _, e := range ents {
		if err := add(e); err != nil {
			return 0, fmt.Errorf("snapshot store: %w", err)
		}
	}
	return total, nil
}

// listHash is File.SHA256: a hash over the size and the chunk hashes.
func listHash(size int64, chunks []string) string {
	h := sha256.New()
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(size))
	h.Write(n[:])
	var zero [32]byte
	for _, c := range chunks {
		b, err := hex.DecodeString(c)
		if c == "" || err != nil || len(b) != 32 {
			b = zero[:]
		}
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}
