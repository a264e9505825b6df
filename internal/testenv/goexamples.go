package testenv

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// goExamplesRE finds the Makefile's list of the Go programs that examples
// run in their guests, so that the list is kept in one place.
var goExamplesRE = regexp.MustCompile(`(?m)^GO_EXAMPLES\s*:=\s*(.*)$`)

// buildGoExamples builds every program of GO_EXAMPLES as `make build` does
// (static, -trimpath, into its own directory: examples/etcd/register/
// register), so that a test can load any example without `make build`.
// A binary is replaced, by a rename, only when the build differs: test
// binaries of other packages may be reading it into an image meanwhile.
func buildGoExamples() error {
	root := RepoRoot()
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		return err
	}
	m := goExamplesRE.FindSubmatch(mk)
	if m == nil {
		return fmt.Errorf("%s: no GO_EXAMPLES line", filepath.Join(root, "Makefile"))
	}
	for _, dir := range strings.Fields(string(m[1])) {
		out := filepath.Join(root, dir, filepath.Base(dir))
		tmp, err := os.CreateTemp(filepath.Dir(out), ".build-*")
		if err != nil {
			return err
		}
		tmp.Close()
		cmd := exec.Command("go", "build", "-trimpath", "-o", tmp.Name(), "./"+dir)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			os.Remove(tmp.Name())
			return fmt.Errorf("build %s: %v\n%s", dir, err, b)
		}
		if same(tmp.Name(), out) {
			os.Remove(tmp.Name())
			continue
		}
		if err := os.Rename(tmp.Name(), out); err != nil {
			os.Remove(tmp.Name())
			return err
		}
	}
	return nil
}

func same(a, b string) bool {
	x, err1 := os.ReadFile(a)
	y, err2 := os.ReadFile(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}
