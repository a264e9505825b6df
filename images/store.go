package images

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Store writes data into dir under its content address, <sha256hex>.<ext>,
// and returns the file's path and the hex hash. A file already there under
// that name is kept, so storing is idempotent and safe to race: every
// writer renames identical bytes into place.
func Store(dir, ext string, data []byte) (path, sum string, err error) {
	h := sha256.Sum256(data)
	sum = hex.EncodeToString(h[:])
	name := sum
	if ext = strings.TrimPrefix(ext, "."); ext != "" {
		name += "." + ext
	}
	path = filepath.Join(dir, name)
	// The size check catches a file cut short by a crash, which the name
	// alone would otherwise vouch for forever.
	if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() && st.Size() == int64(len(data)) {
		return path, sum, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	if err := writeFileAtomic(path, data, 0o644); err != nil {
		return "", "", err
	}
	return path, sum, nil
}

// writeFileAtomic writes data to path so that readers see either the old
// file or the complete new one. The data is synced before the rename
// because content-addressed and derived files are trusted once present.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", tmp, err)
	}
	return os.Rename(tmp, path)
}
