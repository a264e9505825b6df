package snapshot

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// Materialize writes the files of snapshot id (or unique prefix) into dir
// and returns their paths, in the manifest's order. Files are sparse: each
// is truncated to its size and only non-zero chunks are written. Every
// chunk is checked against its hash as it is read, and every file against
// its SHA-256; a mismatch or a missing chunk is an *IntegrityError, and the
// file being written is removed.
func (s *Store) Materialize(id, dir string) ([]string, error) {
	unlock, err := s.lock(unix.LOCK_SH)
	if err != nil {
		return nil, fmt.Errorf("snapshot materialize: %w", err)
	}
	defer unlock()
	m, err := s.Get(id)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", m.ID, err)
	}
	paths := make([]string, len(m.Files))
	errs := make([]error, len(m.Files))
	var wg sync.WaitGroup
	for i := range m.Files {
		paths[i] = filepath.Join(dir, m.Files[i].Name)
		wg.Go(func() { errs[i] = s.materializeFile(m.ID, &m.Files[i], paths[i]) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return paths, nil
}

func (s *Store) materializeFile(id string, f *File, path string) (err error) {
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", id, err)
	}
	defer func() {
		if cerr := out.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("snapshot %s: %w", id, cerr)
		}
		if err != nil {
			os.Remove(path)
		}
	}()
	if err := out.Truncate(f.Size); err != nil {
		return fmt.Errorf("snapshot %s: %w", id, err)
	}

	// Consecutive chunks gather in buf and go out in one write. The extra
	// byte lets a chunk read show that its file is too long.
	buf := make([]byte, readSize+1)
	var bufOff int64
	bufLen := 0
	flush := func() error {
		if bufLen > 0 {
			if _, err := out.WriteAt(buf[:bufLen], bufOff); err != nil {
				return fmt.Errorf("snapshot %s: %w", id, err)
			}
		}
		bufLen = 0
		return nil
	}
	for i, c := range f.Chunks {
		off := int64(i) * ChunkSize
		n := int(min(ChunkSize, f.Size-off))
		if c == "" {
			continue
		}
		if bufLen > 0 && (bufOff+int64(bufLen) != off || bufLen+n > readSize) {
			if err := flush(); err != nil {
				return err
			}
		}
		if bufLen == 0 {
			bufOff = off
		}
		dst := buf[bufLen : bufLen+n]
		cpath := s.chunkPath(c)
		bad := func(problem string, err error) error {
			return &IntegrityError{Snapshot: id, File: f.Name, Chunk: i, Offset: off, Path: cpath, Problem: problem, Err: err}
		}
		if err := readChunk(cpath, buf[bufLen:bufLen+n+1]); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return bad("chunk is missing", err)
			}
			var short errLength
			if errors.As(err, &short) {
				return bad(fmt.Sprintf("chunk has %s bytes, want %d", string(short), n), nil)
			}
			return bad(err.Error(), err)
		}
		sum := sha256.Sum256(dst)
		if got := hex.EncodeToString(sum[:]); got != c {
			return bad("chunk content hashes to "+got+", not to its name", nil)
		}
		bufLen += n
	}
	if err := flush(); err != nil {
		return err
	}
	if got := listHash(f.Size, f.Chunks); got != f.SHA256 {
		return &IntegrityError{Snapshot: id, File: f.Name, Chunk: -1, Path: s.manifestPath(id),
			Problem: fmt.Sprintf("chunk list hashes to %s, the manifest says %s", got, f.SHA256)}
	}
	return nil
}

// errLength says a chunk file's length is wrong: "17" or "more than N".
type errLength string

func (e errLength) Error() string { return "chunk has " + string(e) + " bytes" }

// readChunk fills dst[:len(dst)-1] from path and checks that the file has
// exactly that many bytes.
func readChunk(path string, dst []byte) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	want := len(dst) - 1
	n, err := io.ReadFull(f, dst)
	switch {
	case err == nil:
		return errLength(fmt.Sprintf("more than %d", want))
	case n == want && errors.Is(err, io.ErrUnexpectedEOF):
		return nil
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return errLength(fmt.Sprint(n))
	}
	return err
}
