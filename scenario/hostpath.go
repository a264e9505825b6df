package scenario

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// hostPath is a host path found by Parse, for Load to resolve and check once
// it knows the scenario's directory.
type hostPath struct {
	field   string
	line    int
	target  *string // the field in the Scenario, rewritten to the absolute path
	program bool    // must be executable
	run     bool    // a command's Run[0], which may have been meant as a guest path
	fix     string  // hint for a path that does not exist
}

func (p *parser) checkHostPaths(dir string) {
	for _, h := range p.paths {
		written := *h.target
		abs := filepath.Clean(written)
		if !filepath.IsAbs(abs) {
			abs = filepath.Join(dir, written)
		}
		*h.target = abs
		p.checkHostPath(h, written, abs)
	}
}

func (p *parser) checkHostPath(h hostPath, written, abs string) {
	what := abs
	if written != abs {
		what = fmt.Sprintf("%s (resolved to %s)", written, abs)
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
		hint := h.fix
		switch {
		case h.run:
			hint = fmt.Sprintf("for a program in the guest give its absolute path, like /bin/%s; a relative path names a host file next to the scenario", filepath.Base(written))
		case strings.HasPrefix(written, "~"):
			hint = "~ is not expanded here; write the full path"
		case written != abs:
			hint = "fix the path; relative paths start at the directory of the scenario file"
		}
		p.fail(h.line, h.field, what+" does not exist on this host", hint)
	case err != nil:
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		p.fail(h.line, h.field, fmt.Sprintf("%s cannot be checked: %v", what, err), "make sure you can read it and the directories above it")
	case fi.IsDir():
		p.fail(h.line, h.field, what+" is a directory", "name a file in it")
	case !fi.Mode().IsRegular():
		p.fail(h.line, h.field, what+" is not a regular file", "name a regular file")
	case h.program && fi.Mode().Perm()&0o111 == 0:
		p.fail(h.line, h.field, what+" is not executable", "make it executable with chmod +x "+abs)
	}
}
