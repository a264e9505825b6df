package cluster

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path"
	"path/filepath"
	"sort"

	"github.com/detvm/detvm/guest/composer"
	"github.com/detvm/detvm/images"
	"github.com/detvm/detvm/scenario"
	"github.com/detvm/detvm/wire"
)

// A sidecar's test (scenario.Test, docs/composer.md) is its test.dir
// copied into the image at scenario.TestGuestDir and a wire.Test in its
// config; the guest agent's composer runs it. Each command the composer
// starts is a process named after its file, so its output and exits are
// events like any process's; the composer itself is the process
// composer.ProcName.

// addTest copies n's test directory into img and describes the test in cfg.
// Programs (ELF files) come with their shared libraries; everything else
// (scripts, helpers, data) is copied as it is, with its mode.
func addTest(img *images.Initramfs, cfg *wire.Config, n *scenario.Node) error {
	t := n.Test
	if t == nil {
		return nil
	}
	if err := copyTree(img, t.Dir, scenario.TestGuestDir, 0); err != nil {
		return fmt.Errorf("test.dir: %w", err)
	}
	cfg.Test = &wire.Test{Template: t.Template, DurationNS: uint64(t.Duration), Parallelism: t.Parallelism}
	return nil
}

// maxTreeDepth bounds copyTree, which follows symbolic links, against a
// link to a directory above it.
const maxTreeDepth = 16

// copyTree adds what the host directory dir holds, following symbolic
// links, under the guest directory dst.
func copyTree(img *images.Initramfs, dir, dst string, depth int) error {
	if depth > maxTreeDepth {
		return fmt.Errorf("%s: more than %d directories deep (a symbolic link loop?)", dir, maxTreeDepth)
	}
	entries, err := os.ReadDir(dir) // sorted: the same tree gives the same image
	if err != nil {
		return err
	}
	img.AddDir(dst, 0o755)
	for _, e := range entries {
		src, guest := filepath.Join(dir, e.Name()), path.Join(dst, e.Name())
		st, err := os.Stat(src)
		if err != nil {
			return err
		}
		switch {
		case st.IsDir():
			if err := copyTree(img, src, guest, depth+1); err != nil {
				return err
			}
		case !st.Mode().IsRegular():
			return fmt.Errorf("%s is not a regular file or a directory", src)
		case isELF(src):
			if err := img.AddBinary(guest, src); err != nil {
				return err
			}
		default:
			if err := img.AddHostFile(guest, src, 0); err != nil {
				return err
			}
		}
	}
	return nil
}

func isELF(file string) bool {
	f, err := os.Open(file)
	if err != nil {
		return false
	}
	defer f.Close()
	var magic [4]byte
	_, err = f.Read(magic[:])
	return err == nil && bytes.Equal(magic[:], []byte("\x7fELF"))
}

// testRunning marks, in node.exits, a test command that has started and
// not yet exited. No exit status or signal is that low.
const testRunning = math.MinInt32

// isTestProc reports whether a process of n belongs to its test: a test
// command or the composer.
func (n *node) isTestProc(name string) bool {
	if n.spec.Test == nil || n.spec.Binary != "" && name == mainName(n.spec) {
		return false
	}
	return name == composer.ProcName || composer.IsCommand(name)
}

// recordTest accounts for a start or exit, at epoch, of a test process and
// reports whether e was one. A test command runs many times: its entry in
// n.exits is testRunning from its first start to its first exit, then the
// status of its first failing run, or 0 while none has failed. (n.exits is
// what a snapshot keeps, so a continued run goes on counting.) The SDK
// sink hears of the first failing exit only: that is the property's first
// failure.
func (n *node) recordTest(e wire.Event, epoch uint64) bool {
	if !n.isTestProc(e.Proc) {
		return false
	}
	cur, seen := n.exits[e.Proc]
	switch e.Kind {
	case wire.KindStart:
		if !seen {
			n.exits[e.Proc] = testRunning
		}
	case wire.KindExit:
		if !seen || cur == testRunning || cur == 0 {
			n.exits[e.Proc] = int(e.Code)
			if e.Code != 0 {
				n.props.exited(n.spec.Name, e.Proc, epoch)
			}
		}
	}
	return true
}

// testVerdicts adds a property per test command that ran (every run must
// exit 0) and one for the composer (the test must have ended).
func (n *node) testVerdicts(res *Result) {
	if n.spec.Test == nil {
		return
	}
	var names []string
	for name := range n.exits {
		if n.isTestProc(name) && name != composer.ProcName {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		key := n.spec.Name + "/" + name
		v := Verdict{Property: "exit:" + key, Status: "passed", Kind: "exit"}
		switch code := n.exits[name]; code {
		case testRunning:
			v.Status, v.Message = "unknown", "still running when the run ended"
		case 0:
			res.ExitCodes[key] = 0
			v.Message = "every run exited 0"
		default:
			res.ExitCodes[key] = code
			v.Status, v.Message = "failed", fmt.Sprintf("a run exited with %d (the first that failed)", code)
			v.FirstFailure = n.props.exitFailure(n.spec.Name, name, v.Message)
		}
		res.Verdicts = append(res.Verdicts, v)
	}
	key := n.spec.Name + "/" + composer.ProcName
	v := Verdict{Property: "exit:" + key, Status: "passed", Kind: "exit", Message: "the test ran to its end"}
	code, ok := n.exits[composer.ProcName]
	switch {
	case !ok:
		v.Status, v.Message = "unknown", "the test did not start before the run ended"
	case code == testRunning:
		v.Status, v.Message = "unknown", "the run ended before the test did: raise the run's duration, or lower test.duration"
	case code != 0:
		v.Status, v.Message = "failed", fmt.Sprintf("the test could not run (see %s)", filepath.Join(n.dir, "output.log"))
		v.FirstFailure = n.props.exitFailure(n.spec.Name, composer.ProcName, v.Message)
	}
	if ok && code != testRunning {
		res.ExitCodes[key] = code
	}
	res.Verdicts = append(res.Verdicts, v)
}
