package images

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"

	"github.com/detvm/detvm/internal/atomicfile"
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
	if err := atomicfile.Write(path, data, 0o644); err != nil {
		return "", "", err
	}
	return path, sum, nil
}
