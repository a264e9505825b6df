package snapshot

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// piece is data written at an offset of a file that is otherwise a hole.
type piece struct {
	off  int64
	data []byte
}

// sparse creates dir/name with the given apparent size, holes everywhere
// but the pieces, and returns its path.
func sparse(t testing.TB, dir, name string, size int64, pieces ...piece) string {
	t.Helper()
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for _, p := range pieces {
		if _, err := f.WriteAt(p.data, p.off); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// random returns n bytes that depend only on seed.
func random(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for k := range 8 {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// dense writes data to dir/name and returns its path.
func dense(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func open(t testing.TB) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func put(t testing.TB, s *Store, m Manifest, paths ...string) *Manifest {
	t.Helper()
	got, err := s.Put(&m, paths)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// chunkFiles counts the chunk files in the store.
func chunkFiles(t *testing.T, s *Store) int {
	t.Helper()
	n := 0
	if err := s.walkChunks(func(_, name string, _ os.DirEntry) error {
		if _, ok := parseSum(name); ok {
			n++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRoundTrip(t *testing.T) {
	src := t.TempDir()
	const mib = 1 << 20
	for _, tc := range []struct {
		name      string
		path      string
		nonZero   int  // chunks with data
		wantHoles bool // the materialized file must be sparse
	}{
		{"dense.mig", dense(t, src, "dense.mig", random(1, 3*ChunkSize)), 3, false},
		{"tail.mig", dense(t, src, "tail.mig", random(2, 3*ChunkSize+123)), 4, false},
		{"tiny.mig", dense(t, src, "tiny.mig", []byte("x")), 1, false},
		{"empty.mig", dense(t, src, "empty.mig", nil), 0, false},
		{"written-zeros.mig", dense(t, src, "written-zeros.mig", make([]byte, 2*ChunkSize+5)), 0, true},
		// Data at the start, one 4 KiB page inside chunk 70, and a run
		// across a 4 MiB read boundary; a whole read block in between is
		// hole, and the file ends in a partial chunk that is hole.
		{"sparse.mig", sparse(t, src, "sparse.mig", 12*mib+777,
			piece{0, random(3, 100)},
			piece{70*ChunkSize + 4096, random(4, 4096)},
			piece{8*mib - 3000, random(5, 6000)}), 4, true},
		{"big.mig", dense(t, src, "big.mig", random(6, 9*mib+11)), 9*16 + 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			m := put(t, s, Manifest{Epoch: 7}, tc.path)
			want, err := os.ReadFile(tc.path)
			if err != nil {
				t.Fatal(err)
			}
			f := m.Files[0]
			// The hash list, computed here from the content itself.
			var chunks []string
			for off := 0; off < len(want); off += ChunkSize {
				c := want[off:min(off+ChunkSize, len(want))]
				if bytes.Count(c, []byte{0}) == len(c) {
					chunks = append(chunks, "")
					continue
				}
				sum := sha256.Sum256(c)
				chunks = append(chunks, hex.EncodeToString(sum[:]))
			}
			if f.Name != tc.name || f.Size != int64(len(want)) || f.SHA256 != listHash(int64(len(want)), chunks) || m.Bytes != f.Size {
				t.Errorf("manifest file %+v (bytes %d), want name %s size %d and the hash list of its content", f, m.Bytes, tc.name, len(want))
			}
			nonZero := 0
			for _, c := range f.Chunks {
				if c != "" {
					nonZero++
				}
			}
			if nonZero != tc.nonZero || chunkFiles(t, s) != tc.nonZero {
				t.Errorf("%d non-zero chunks, %d chunk files; want %d", nonZero, chunkFiles(t, s), tc.nonZero)
			}
			out := t.TempDir()
			paths, err := s.Materialize(m.ID[:6], out)
			if err != nil {
				t.Fatal(err)
			}
			if len(paths) != 1 || paths[0] != filepath.Join(out, tc.name) {
				t.Fatalf("Materialize returned %v", paths)
			}
			got, err := os.ReadFile(paths[0])
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("materialized %s differs from the original", tc.name)
			}
			var st syscall.Stat_t
			if err := syscall.Stat(paths[0], &st); err != nil {
				t.Fatal(err)
			}
			if tc.wantHoles && st.Blocks*512 >= st.Size {
				t.Errorf("materialized %s is not sparse: %d bytes allocated for %d", tc.name, st.Blocks*512, st.Size)
			}
		})
	}
}

// TestPutSeveralFiles stores files in parallel and keeps their order.
func TestPutSeveralFiles(t *testing.T) {
	src := t.TempDir()
	var paths []string
	for i := range 5 {
		paths = append(paths, dense(t, src, fmt.Sprintf("node-%d.mig", 5-i), random(uint64(i), (i+1)*ChunkSize+i)))
	}
	s := open(t)
	m := put(t, s, Manifest{Scenario: "x"}, paths...)
	out := t.TempDir()
	got, err := s.Materialize(m.ID, out)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range paths {
		if m.Files[i].Name != filepath.Base(p) || got[i] != filepath.Join(out, filepath.Base(p)) {
			t.Errorf("file %d: manifest %s, materialized %s; want %s", i, m.Files[i].Name, got[i], filepath.Base(p))
		}
		a, _ := os.ReadFile(p)
		b, _ := os.ReadFile(got[i])
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs after the round trip", p)
		}
	}
}

func TestDedup(t *testing.T) {
	src := t.TempDir()
	base := random(1, 8*ChunkSize)
	changed := bytes.Clone(base)
	changed[3*ChunkSize+100] ^= 1
	twice := append(random(2, ChunkSize), random(2, ChunkSize)...) // one chunk, twice
	for _, d := range []string{"1", "2", "3"} {
		if err := os.Mkdir(filepath.Join(src, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s := open(t)
	first := put(t, s, Manifest{Epoch: 1}, dense(t, src, "1/node-1.mig", base))
	if first.NewBytes != 8*ChunkSize || chunkFiles(t, s) != 8 {
		t.Fatalf("first put: new_bytes %d, %d chunk files; want %d, 8", first.NewBytes, chunkFiles(t, s), 8*ChunkSize)
	}
	second := put(t, s, Manifest{Epoch: 2, Parent: first.ID}, dense(t, src, "2/node-1.mig", changed))
	if second.NewBytes != ChunkSize || chunkFiles(t, s) != 9 {
		t.Errorf("one chunk changed: new_bytes %d, %d chunk files; want %d, 9", second.NewBytes, chunkFiles(t, s), ChunkSize)
	}
	for i, c := range second.Files[0].Chunks {
		if same := c == first.Files[0].Chunks[i]; same != (i != 3) {
			t.Errorf("chunk %d: %s vs %s", i, c, first.Files[0].Chunks[i])
		}
	}
	again := put(t, s, Manifest{Epoch: 1}, filepath.Join(src, "1/node-1.mig"))
	if again.ID != first.ID || again.NewBytes != 0 || chunkFiles(t, s) != 9 {
		t.Errorf("same put again: id %s new_bytes %d, %d chunk files; want id %s, 0, 9", again.ID, again.NewBytes, chunkFiles(t, s), first.ID)
	}
	if m, err := s.Get(first.ID); err != nil || m.NewBytes != 8*ChunkSize {
		t.Errorf("the first manifest should be kept as stored: %+v, %v", m, err)
	}
	dup := put(t, s, Manifest{Epoch: 3}, dense(t, src, "3/node-1.mig", twice))
	if dup.NewBytes != ChunkSize || dup.Files[0].Chunks[0] != dup.Files[0].Chunks[1] {
		t.Errorf("a chunk repeated within a file: new_bytes %d, chunks %v", dup.NewBytes, dup.Files[0].Chunks)
	}
	disk, err := s.DiskBytes()
	if err != nil {
		t.Fatal(err)
	}
	var manifests int64
	for _, m := range []*Manifest{first, second, dup} {
		st, err := os.Stat(s.manifestPath(m.ID))
		if err != nil {
			t.Fatal(err)
		}
		manifests += st.Size()
	}
	if want := 10*ChunkSize + manifests; disk != want {
		t.Errorf("DiskBytes %d, want %d", disk, want)
	}
}

// TestConcurrentPuts: two Puts of the same data through one Store share
// every chunk and still both find all of them on disk.
func TestConcurrentPuts(t *testing.T) {
	src := t.TempDir()
	data := random(9, 40*ChunkSize)
	s := open(t)
	ms := make([]*Manifest, 4)
	errs := make([]error, 4)
	done := make(chan int)
	for i := range ms {
		dir := filepath.Join(src, fmt.Sprint(i))
		os.Mkdir(dir, 0o755)
		path := dense(t, dir, "node-1.mig", data)
		go func() {
			ms[i], errs[i] = s.Put(&Manifest{Epoch: uint64(i)}, []string{path})
			done <- i
		}()
	}
	var total int64
	for range ms {
		i := <-done
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		total += ms[i].NewBytes
	}
	if total != int64(len(data)) || chunkFiles(t, s) != 40 {
		t.Errorf("new_bytes add up to %d, %d chunk files; want %d, 40", total, chunkFiles(t, s), len(data))
	}
	for _, m := range ms {
		if _, err := s.Materialize(m.ID, t.TempDir()); err != nil {
			t.Error(err)
		}
	}
}

func TestID(t *testing.T) {
	base := Manifest{Epoch: 5, VirtualNS: 5e6, Segments: []Segment{{0, 1}}, Scenario: "etcd", Images: map[string]string{"a": "1", "b": "2"},
		Files: []File{{Name: "n.mig", Size: 1, SHA256: strings.Repeat("0", 64), Chunks: []string{""}}}, State: []byte(`{"x": 1}`), Bytes: 1}
	id := func(m Manifest) string {
		t.Helper()
		s, err := computeID(&m)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	want := id(base)
	if len(want) != 16 || !isHex(want) {
		t.Fatalf("ID %q is not 16 hex digits", want)
	}
	same := []func(m *Manifest){
		func(m *Manifest) { m.Created = "2031-01-01T00:00:00Z" },
		func(m *Manifest) { m.NewBytes = 12345 },
		func(m *Manifest) { m.ID = "0123456789abcdef" },
		func(m *Manifest) { m.State = []byte("{\n  \"x\":   1\n}") }, // whitespace only
		func(m *Manifest) { m.Images = map[string]string{"b": "2", "a": "1"} },
	}
	for i, f := range same {
		m := base
		f(&m)
		if got := id(m); got != want {
			t.Errorf("change %d altered the ID: %s, want %s", i, got, want)
		}
	}
	differ := []func(m *Manifest){
		func(m *Manifest) { m.Epoch++ },
		func(m *Manifest) { m.Parent = "0123456789abcdef" },
		func(m *Manifest) { m.State = []byte(`{"x": 2}`) },
		func(m *Manifest) { m.Segments = append(m.Segments, Segment{9, 9}) },
		func(m *Manifest) {
			m.Files = []File{{Name: "n.mig", Size: 1, SHA256: strings.Repeat("1", 64), Chunks: []string{""}}}
		},
	}
	for i, f := range differ {
		m := base
		f(&m)
		if got := id(m); got == want {
			t.Errorf("change %d left the ID at %s", i, got)
		}
	}

	// Created is informational: editing it in the stored manifest is not
	// tampering.
	s := open(t)
	m := put(t, s, Manifest{Epoch: 1})
	edit(t, s.manifestPath(m.ID), `"created": "`+m.Created+`"`, `"created": "1999-01-01T00:00:00Z"`)
	if got, err := s.Get(m.ID); err != nil || got.Created != "1999-01-01T00:00:00Z" {
		t.Errorf("Get after editing created: %v, %v", got, err)
	}
}

// edit replaces old by new in the file at path, which must contain it.
func edit(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("%s lacks %q:\n%s", path, old, b)
	}
	if err := os.WriteFile(path, bytes.Replace(b, []byte(old), []byte(new), 1), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestGet(t *testing.T) {
	// Two epochs whose IDs share their first 4 digits (a file-less
	// manifest, as Put stores it).
	first := map[string]uint64{}
	var a, b uint64
	for e := uint64(0); ; e++ {
		id, err := computeID(&Manifest{Epoch: e, Files: []File{}})
		if err != nil {
			t.Fatal(err)
		}
		if prev, ok := first[id[:4]]; ok {
			a, b = prev, e
			break
		}
		first[id[:4]] = e
	}
	s := open(t)
	ma := put(t, s, Manifest{Epoch: a})
	mb := put(t, s, Manifest{Epoch: b})
	if ma.ID[:4] != mb.ID[:4] {
		t.Fatalf("IDs %s and %s were to share a prefix", ma.ID, mb.ID)
	}
	n := 4
	for ma.ID[:n] == mb.ID[:n] {
		n++
	}
	for _, tc := range []struct {
		id      string
		want    string // the ID found, or
		err     error  // the error
		mention []string
	}{
		{ma.ID, ma.ID, nil, nil},
		{strings.ToUpper(mb.ID), mb.ID, nil, nil},
		{ma.ID[:n], ma.ID, nil, nil},
		{ma.ID[:4], "", ErrAmbiguous, []string{ma.ID, mb.ID}},
		{"abc", "", ErrBadID, []string{"4 to 16 hex digits"}},
		{"xyz1", "", ErrBadID, nil},
		{ma.ID + "0", "", ErrBadID, nil},
		{notPrefix(ma.ID, mb.ID), "", ErrNotFound, []string{ma.ID, mb.ID, s.Dir()}},
	} {
		m, err := s.Get(tc.id)
		if tc.err == nil {
			if err != nil || m.ID != tc.want {
				t.Errorf("Get(%s) = %v, %v; want %s", tc.id, m, err, tc.want)
			}
			continue
		}
		if !errors.Is(err, tc.err) {
			t.Errorf("Get(%s): error %v, want %v", tc.id, err, tc.err)
			continue
		}
		for _, w := range tc.mention {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Get(%s): error %q does not mention %s", tc.id, err, w)
			}
		}
	}
	empty := open(t)
	if _, err := empty.Get("abcd"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "empty") {
		t.Errorf("Get in an empty store: %v", err)
	}
}

// notPrefix returns a full ID that is neither a nor b.
func notPrefix(a, b string) string {
	for _, c := range "0123456789abcdef" {
		id := strings.Repeat(string(c), 16)
		if id != a && id != b {
			return id
		}
	}
	panic("unreachable")
}

// TestDamage: a damaged chunk fails Materialize with an IntegrityError that
// names the snapshot, file, chunk, offset and chunk path, and no partial
// file is left behind.
func TestDamage(t *testing.T) {
	for _, tc := range []struct {
		name    string
		damage  func(t *testing.T, path string)
		problem string
	}{
		{"flipped byte", func(t *testing.T, path string) {
			os.Chmod(path, 0o644)
			b, _ := os.ReadFile(path)
			b[1000] ^= 0x40
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "chunk content hashes to"},
		{"missing", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}, "chunk is missing"},
		{"truncated", func(t *testing.T, path string) {
			if err := os.Truncate(path, 10); err != nil {
				t.Fatal(err)
			}
		}, "chunk has 10 bytes, want 65536"},
		{"too long", func(t *testing.T, path string) {
			os.Chmod(path, 0o644)
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte("x"))
			f.Close()
		}, "more than 65536"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := t.TempDir()
			s := open(t)
			m := put(t, s, Manifest{Epoch: 1}, dense(t, src, "node-1.mig", random(1, 4*ChunkSize)), dense(t, src, "node-2.mig", random(2, 4*ChunkSize)))
			chunk := s.chunkPath(m.Files[1].Chunks[2])
			tc.damage(t, chunk)
			out := t.TempDir()
			_, err := s.Materialize(m.ID, out)
			var ie *IntegrityError
			if !errors.As(err, &ie) {
				t.Fatalf("Materialize: %v, want an *IntegrityError", err)
			}
			if ie.Snapshot != m.ID || ie.File != "node-2.mig" || ie.Chunk != 2 || ie.Offset != 2*ChunkSize || ie.Path != chunk {
				t.Errorf("error fields %+v", ie)
			}
			for _, w := range []string{m.ID, "node-2.mig chunk 2", "offset 131072", chunk, tc.problem, "re-run to recreate the snapshot"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if _, err := os.Stat(filepath.Join(out, "node-2.mig")); !os.IsNotExist(err) {
				t.Errorf("a partial node-2.mig was left: %v", err)
			}
		})
	}
}

func TestTamperedManifest(t *testing.T) {
	for _, tc := range []struct {
		name, old, new, problem string
	}{
		{"epoch", `"epoch": 5`, `"epoch": 6`, "manifest was modified"},
		{"chunk", `"chunks": [`, `"chunks": [ "` + strings.Repeat("a", 64) + `",`, "manifest was modified"},
		{"not json", `"epoch": 5`, `"epoch": 5,,`, "manifest is not valid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := t.TempDir()
			s := open(t)
			m := put(t, s, Manifest{Epoch: 5}, dense(t, src, "node-1.mig", random(1, 2*ChunkSize)))
			ok := put(t, s, Manifest{Epoch: 1})
			path := s.manifestPath(m.ID)
			edit(t, path, tc.old, tc.new)
			_, err := s.Get(m.ID)
			var ie *IntegrityError
			if !errors.As(err, &ie) || !strings.Contains(err.Error(), "snapshot "+m.ID+": "+tc.problem) || !strings.Contains(err.Error(), path) {
				t.Errorf("Get: %v", err)
			}
			if _, err := s.Materialize(m.ID, t.TempDir()); err == nil {
				t.Error("Materialize of a tampered manifest succeeded")
			}
			ms, err := s.List()
			if err == nil || !strings.Contains(err.Error(), path) {
				t.Errorf("List: error %v, want one naming %s", err, path)
			}
			if len(ms) != 1 || ms[0].ID != ok.ID {
				t.Errorf("List returned %v, want just the intact %s", ms, ok.ID)
			}
		})
	}
}

func TestRemove(t *testing.T) {
	s := open(t)
	p := put(t, s, Manifest{Epoch: 1})
	c1 := put(t, s, Manifest{Epoch: 2, Parent: p.ID})
	c2 := put(t, s, Manifest{Epoch: 3, Parent: p.ID, Scenario: "other"})
	err := s.Remove(p.ID[:6], false)
	if !errors.Is(err, ErrHasChildren) || !strings.Contains(err.Error(), c1.ID) || !strings.Contains(err.Error(), c2.ID) {
		t.Fatalf("Remove of a parent: %v", err)
	}
	if _, err := s.Get(p.ID); err != nil {
		t.Fatalf("a refused Remove removed: %v", err)
	}
	if err := s.Remove(p.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(p.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Remove: %v", err)
	}
	if err := s.Remove(c1.ID, false); err != nil {
		t.Errorf("Remove of a leaf: %v", err)
	}
	if err := s.Remove(c1.ID, false); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Remove: %v", err)
	}
	if _, err := s.Put(&Manifest{Parent: p.ID}, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("Put with a removed parent: %v", err)
	}
}

func TestGC(t *testing.T) {
	src := t.TempDir()
	os.Mkdir(filepath.Join(src, "c"), 0o755)
	base := random(1, 4*ChunkSize)
	child := append(bytes.Clone(base), random(2, 2*ChunkSize+10)...)
	child[ChunkSize] ^= 1
	s := open(t)
	p := put(t, s, Manifest{Epoch: 1}, dense(t, src, "node-1.mig", base))
	c := put(t, s, Manifest{Epoch: 2, Parent: p.ID}, dense(t, src, "c/node-1.mig", child))
	if n, b, err := s.GC(); n != 0 || b != 0 || err != nil {
		t.Fatalf("GC with nothing to free: %d, %d, %v", n, b, err)
	}
	// Temp files from a Put that died are freed too (their bytes, not as chunks).
	tmp := filepath.Join(s.Dir(), "chunks", "ab", strings.Repeat("ab", 32)+".tmp1-1")
	os.MkdirAll(filepath.Dir(tmp), 0o755)
	os.WriteFile(tmp, []byte("partial"), 0o644)
	mtmp := filepath.Join(s.Dir(), "manifests", "."+c.ID+".json.tmp123")
	os.WriteFile(mtmp, []byte("{"), 0o644)
	if err := s.Remove(c.ID, false); err != nil {
		t.Fatal(err)
	}
	n, b, err := s.GC()
	// Chunk 1 changed, and chunks 4, 5 and the 10-byte 6 are new.
	if want := int64(3*ChunkSize+10) + 7 + 1; n != 4 || b != want || err != nil {
		t.Errorf("GC = %d chunks, %d bytes, %v; want 4, %d", n, b, err, want)
	}
	if chunkFiles(t, s) != 4 {
		t.Errorf("%d chunk files left, want 4", chunkFiles(t, s))
	}
	for _, p := range []string{tmp, mtmp} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("temp file %s survived GC: %v", p, err)
		}
	}
	if _, err := s.Materialize(p.ID, t.TempDir()); err != nil {
		t.Errorf("the kept snapshot: %v", err)
	}
	if n, b, err := s.GC(); n != 0 || b != 0 || err != nil {
		t.Errorf("second GC: %d, %d, %v", n, b, err)
	}
	// A corrupt manifest stops GC before it deletes anything.
	os.WriteFile(s.manifestPath(strings.Repeat("e", 16)), []byte("{"), 0o644)
	s.Remove(p.ID, true)
	if n, _, err := s.GC(); n != 0 || err == nil || !strings.Contains(err.Error(), "nothing was deleted") {
		t.Errorf("GC with a corrupt manifest: %d, %v", n, err)
	}
	if chunkFiles(t, s) != 4 {
		t.Errorf("GC with a corrupt manifest deleted chunks")
	}
}

// TestGCOtherStore: a GC through another Store (another process) must not
// leave this Store believing deleted chunks are still there.
func TestGCOtherStore(t *testing.T) {
	src := t.TempDir()
	path := dense(t, src, "node-1.mig", random(1, 3*ChunkSize))
	s := open(t)
	m := put(t, s, Manifest{Epoch: 1}, path)
	if err := s.Remove(m.ID, false); err != nil {
		t.Fatal(err)
	}
	other, err := Open(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if n, _, err := other.GC(); n != 3 || err != nil {
		t.Fatalf("GC: %d, %v", n, err)
	}
	again := put(t, s, Manifest{Epoch: 1}, path)
	if again.NewBytes != 3*ChunkSize {
		t.Errorf("put after another store's GC added %d bytes, want %d", again.NewBytes, 3*ChunkSize)
	}
	if _, err := s.Materialize(again.ID, t.TempDir()); err != nil {
		t.Error(err)
	}
}

func TestList(t *testing.T) {
	s := open(t)
	if ms, err := s.List(); len(ms) != 0 || err != nil {
		t.Fatalf("empty store: %v, %v", ms, err)
	}
	var ids []string
	for _, m := range []Manifest{{Epoch: 30}, {Epoch: 10}, {Epoch: 20, Scenario: "a"}, {Epoch: 20, Scenario: "b"}, {Epoch: 0}} {
		ids = append(ids, put(t, s, m).ID)
	}
	ms, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, fmt.Sprintf("%d/%s", m.Epoch, m.ID))
	}
	mid := []string{ids[2], ids[3]}
	if mid[0] > mid[1] {
		mid[0], mid[1] = mid[1], mid[0]
	}
	want := []string{"0/" + ids[4], "10/" + ids[1], "20/" + mid[0], "20/" + mid[1], "30/" + ids[0]}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("List order\n got %v\nwant %v", got, want)
	}
}

func TestPutErrors(t *testing.T) {
	src := t.TempDir()
	os.Mkdir(filepath.Join(src, "b"), 0o755)
	a := dense(t, src, "node-1.mig", []byte("a"))
	b := dense(t, src, "b/node-1.mig", []byte("b"))
	s := open(t)
	for _, tc := range []struct {
		name  string
		m     Manifest
		paths []string
		want  string
	}{
		{"same base name", Manifest{}, []string{a, b}, "same base name"},
		{"missing file", Manifest{}, []string{filepath.Join(src, "nope.mig")}, "nope.mig"},
		{"directory", Manifest{}, []string{src}, "not a regular file"},
		{"short parent", Manifest{Parent: "abcd"}, nil, "full 16-digit ID"},
		{"bad state", Manifest{State: []byte("{")}, nil, "state is not valid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Put(&tc.m, tc.paths)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Put: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if ms, _ := s.List(); len(ms) != 0 {
		t.Errorf("failed Puts left manifests: %v", ms)
	}
}

// BenchmarkPut stores a 64 MiB file of random data: "new" into an empty
// store (every chunk hashed and written), "dedup" into a store that has
// every chunk already (hashing only).
func BenchmarkPut(b *testing.B) {
	const size = 64 << 20
	path := dense(b, b.TempDir(), "node-1.mig", random(42, size))
	b.Run("new", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			b.StopTimer()
			s := open(b)
			b.StartTimer()
			put(b, s, Manifest{}, path)
			b.StopTimer()
			os.RemoveAll(s.Dir())
			b.StartTimer()
		}
	})
	b.Run("dedup", func(b *testing.B) {
		s := open(b)
		put(b, s, Manifest{}, path)
		b.SetBytes(size)
		for b.Loop() {
			put(b, s, Manifest{}, path)
		}
	})
}
