package snapshot

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/detvm/detvm/internal/atomicfile"

	"golang.org/x/sys/unix"
)

// readSize is how much of a file Put reads at once, and the unit in which
// it decides that a stretch is a hole and need not be read at all.
const readSize = 4 << 20

// buffersPerFile bounds the read buffers one file has in flight: one being
// read, one being hashed, one waiting for its chunks to be stored.
const buffersPerFile = 3

// zeros is read-only; hashing holes and testing blocks for zero read it.
var zeros [readSize]byte

// Put stores the files at paths as the snapshot m: it cuts each file into
// ChunkSize blocks (files in parallel), writes the blocks the store lacks,
// fills m.Files in the order of paths, m.Bytes, m.NewBytes, m.ID and
// m.Created, and writes the manifest. New chunks are made durable with one
// syncfs before the manifest is written (temp file, fsync, rename), so a
// manifest on disk never names a chunk that a crash can take away.
//
// m.Parent, if set, must be the full ID of a snapshot in the store. Putting
// an identical manifest again is harmless: it gets the same ID, adds no
// chunks, and the manifest already stored (with its Created and NewBytes)
// is kept.
func (s *Store) Put(m *Manifest, paths []string) (*Manifest, error) {
	if m == nil {
		return nil, errors.New("snapshot put: nil manifest")
	}
	if m.Parent != "" {
		if len(m.Parent) != idLen || !isHex(m.Parent) {
			return nil, fmt.Errorf("snapshot put: parent %q: %w: want the parent's full %d-digit ID", m.Parent, ErrBadID, idLen)
		}
		if _, err := os.Stat(s.manifestPath(m.Parent)); err != nil {
			return nil, fmt.Errorf("snapshot put: parent %s: %w in %s", m.Parent, ErrNotFound, s.dir)
		}
	}
	if len(m.State) > 0 && !json.Valid(m.State) {
		return nil, errors.New("snapshot put: the manifest's state is not valid JSON")
	}
	seen := map[string]string{}
	for _, p := range paths {
		name := filepath.Base(p)
		if err := checkName(name); err != nil {
			return nil, fmt.Errorf("snapshot put: %s: %w", p, err)
		}
		if other, dup := seen[name]; dup {
			return nil, fmt.Errorf("snapshot put: %s and %s have the same base name; a snapshot's files need distinct names", other, p)
		}
		seen[name] = p
	}

	unlock, err := s.lock(unix.LOCK_SH)
	if err != nil {
		return nil, fmt.Errorf("snapshot put: %w", err)
	}
	defer unlock()
	if err := s.loadKnown(); err != nil {
		return nil, fmt.Errorf("snapshot put: reading %s: %w", filepath.Join(s.dir, "chunks"), err)
	}

	p := &putter{s: s, jobs: make(chan chunkJob, 2*readSize/ChunkSize)}
	var workers sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		workers.Go(p.work)
	}
	files := make([]File, len(paths))
	var each sync.WaitGroup
	for i, path := range paths {
		each.Go(func() {
			if err := p.file(path, &files[i]); err != nil {
				p.fail(err)
			}
		})
	}
	each.Wait()
	close(p.jobs)
	workers.Wait()
	// Chunks that another Put of this Store claimed first must be on disk
	// before this manifest may name them.
	for _, w := range p.waits {
		<-w.done
		if w.err != nil {
			p.fail(w.err)
		}
	}
	if err := p.firstErr(); err != nil {
		return nil, fmt.Errorf("snapshot put: %w", err)
	}
	if err := s.syncfs(); err != nil {
		return nil, fmt.Errorf("snapshot put: syncfs %s: %w", s.dir, err)
	}

	m.Files = files
	m.Bytes = 0
	for _, f := range files {
		m.Bytes += f.Size
	}
	m.NewBytes = p.newBytes.Load()
	m.Created = time.Now().UTC().Format(time.RFC3339)
	if m.ID, err = computeID(m); err != nil {
		return nil, fmt.Errorf("snapshot put: encoding the manifest: %w", err)
	}
	path := s.manifestPath(m.ID)
	if _, err := s.read(m.ID); err == nil {
		return m, nil // stored before, identical by its ID
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("snapshot put: encoding the manifest: %w", err)
	}
	if err := atomicfile.Write(path, append(data, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("snapshot put: writing %s: %w", path, err)
	}
	return m, nil
}

// loadKnown fills the set of chunks on disk, once per Store, and again
// after a GC (by any process) may have deleted some.
func (s *Store) loadKnown() error {
	gen, err := s.readGeneration()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loaded && s.gen == gen {
		return nil
	}
	// Chunks this Store is writing stay claimed; everything else is reread.
	known := map[[32]byte]*pending{}
	for sum, p := range s.known {
		if p != nil {
			known[sum] = p
		}
	}
	err = s.walkChunks(func(_, name string, _ fs.DirEntry) error {
		if sum, ok := parseSum(name); ok {
			if _, busy := known[sum]; !busy {
				known[sum] = nil
			}
			s.dirs[sum[0]].Store(true)
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.known, s.loaded, s.gen = known, true, gen
	return nil
}

// claim reports whether the caller should write chunk sum. If not, p is
// nil when the chunk is on disk, or the write in progress to wait for.
func (s *Store) claim(sum [32]byte) (p *pending, mine bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.known[sum]; ok {
		return p, false
	}
	p = &pending{done: make(chan struct{})}
	s.known[sum] = p
	return p, true
}

// settle ends a claim: the chunk is on disk, or (err) not.
func (s *Store) settle(sum [32]byte, p *pending, err error) {
	s.mu.Lock()
	if err != nil {
		delete(s.known, sum)
	} else {
		s.known[sum] = nil
	}
	s.mu.Unlock()
	p.err = err
	close(p.done)
}

// writeChunk stores data as chunk sum: temp file, rename. Durability comes
// from the syncfs at the end of Put.
func (s *Store) writeChunk(sum [32]byte, name string, data []byte) error {
	dir := filepath.Join(s.dir, "chunks", name[:2])
	if !s.dirs[sum[0]].Load() {
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		s.dirs[sum[0]].Store(true)
	}
	final := filepath.Join(dir, name)
	tmp := final + ".tmp" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatUint(s.tmpN.Add(1), 10)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing chunk %s: %w", final, err)
	}
	return nil
}

func (s *Store) syncfs() error {
	d, err := os.Open(s.dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return unix.Syncfs(int(d.Fd()))
}

// putter is one Put in progress: a pool of workers hashes and stores
// chunks that the per-file goroutines read.
type putter struct {
	s        *Store
	jobs     chan chunkJob
	newBytes atomic.Int64

	mu     sync.Mutex
	err    error
	failed atomic.Bool
	waits  []*pending
}

// chunkJob is one block for a worker: it sets *out to the block's hash, or
// "" for zeros, stores the block if new, and calls done.Done.
type chunkJob struct {
	data []byte
	out  *string
	done *sync.WaitGroup
}

func (p *putter) fail(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.mu.Unlock()
	p.failed.Store(true)
}

func (p *putter) firstErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

func (p *putter) work() {
	for j := range p.jobs {
		if !p.failed.Load() {
			p.chunk(j)
		}
		j.done.Done()
	}
}

func (p *putter) chunk(j chunkJob) {
	if bytes.Equal(j.data, zeros[:len(j.data)]) {
		*j.out = ""
		return
	}
	sum := sha256.Sum256(j.data)
	name := hex.EncodeToString(sum[:])
	*j.out = name
	w, mine := p.s.claim(sum)
	if !mine {
		if w != nil {
			p.mu.Lock()
			p.waits = append(p.waits, w)
			p.mu.Unlock()
		}
		return
	}
	err := p.s.writeChunk(sum, name, j.data)
	p.s.settle(sum, w, err)
	if err != nil {
		p.fail(err)
		return
	}
	p.newBytes.Add(int64(len(j.data)))
}

// block is one read of a file: readSize bytes at off, or fewer at the end.
// buf is nil when the stretch is all hole.
type block struct {
	off int64
	n   int
	buf []byte
}

// file chunks the file at path into f. A reader goroutine reads ahead while
// this one hands blocks to the workers.
func (p *putter) file(path string, f *File) error {
	fh, err := os.Open(path)
	if err != nil {
		return err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	size := st.Size()
	*f = File{Name: filepath.Base(path), Size: size, Chunks: make([]string, chunkCount(size))}
	unix.Fadvise(int(fh.Fd()), 0, 0, unix.FADV_SEQUENTIAL)
	exts := dataExtents(fh, size)

	free := make(chan []byte, buffersPerFile)
	for range buffersPerFile {
		free <- nil // allocated on first use: an all-hole file needs none
	}
	blocks := make(chan block, 1)
	go func() {
		defer close(blocks)
		next := 0 // first extent that may overlap the current block
		for off := int64(0); off < size; off += readSize {
			if p.failed.Load() {
				return
			}
			n := int(min(readSize, size-off))
			for next < len(exts) && exts[next].end <= off {
				next++
			}
			if next == len(exts) || exts[next].start >= off+int64(n) {
				blocks <- block{off: off, n: n}
				continue
			}
			buf := <-free
			if buf == nil {
				buf = make([]byte, readSize)
			}
			if _, err := fh.ReadAt(buf[:n], off); err != nil {
				p.fail(fmt.Errorf("reading %s at offset %d: %w", path, off, err))
				return
			}
			blocks <- block{off: off, n: n, buf: buf}
		}
	}()

	var stored sync.WaitGroup // every block's chunks are done
	for b := range blocks {
		if b.buf == nil {
			continue
		}
		data := b.buf[:b.n]
		first := int(b.off / ChunkSize)
		var done sync.WaitGroup
		for i := 0; i*ChunkSize < len(data); i++ {
			done.Add(1)
			p.jobs <- chunkJob{data: data[i*ChunkSize : min((i+1)*ChunkSize, len(data))], out: &f.Chunks[first+i], done: &done}
		}
		stored.Go(func() {
			done.Wait()
			free <- b.buf
		})
	}
	stored.Wait()
	f.SHA256 = listHash(f.Size, f.Chunks)
	return nil
}

// extent is a stretch [start, end) of a file that holds data.
type extent struct{ start, end int64 }

// dataExtents lists the data stretches of f with SEEK_DATA/SEEK_HOLE, so
// that holes are neither read nor chunked. Where the file system cannot
// say, the rest of the file counts as data.
func dataExtents(f *os.File, size int64) []extent {
	fd := int(f.Fd())
	var exts []extent
	for off := int64(0); off < size; {
		d, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if err == unix.ENXIO {
			break // only a hole from off to the end
		}
		if err != nil {
			return append(exts, extent{off, size})
		}
		if d >= size {
			break
		}
		h, err := unix.Seek(fd, d, unix.SEEK_HOLE)
		if err != nil || h <= d || h > size {
			h = size
		}
		exts = append(exts, extent{d, h})
		off = h
	}
	return exts
}
