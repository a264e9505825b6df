// Package composer plans a test written in the layout of Antithesis' Test
// Composer: a directory of test templates, each holding executables whose
// name prefixes (first_, parallel_driver_, serial_driver_,
// singleton_driver_, anytime_, eventually_, finally_) say when and how
// they run. docs/composer.md describes the semantics for users.
//
// The package is a pure, deterministic core in the manner of etcd's raft:
// it does no I/O, reads no clock and owns no goroutine. A Planner is given
// the template, a random source and the time at each call; it answers with
// the commands to start now and when it wants to be asked again. The guest
// agent (guest/agent/composer.go) is the thin driver that starts the
// processes and reports their exits. Because every choice comes from the
// random source and every time from the caller, the same inputs give the
// same plan, which is what lets a detvm run with a test be replayed.
//
// It is imported by the guest agent, so it must not import host-only
// packages.
package composer

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path"
	"slices"
	"strings"
)

// Roots are the guest directories that hold test templates, one
// subdirectory each: Antithesis' place, where detvm copies a sidecar's
// test.dir, and detvm's own. A template found under both is one template
// whose commands are the union (the first root's file wins a name clash),
// as Antithesis merges same-named templates of several containers.
var Roots = []string{"/opt/antithesis/test/v1", "/opt/detvm/test/v1"}

// ProcName is the name under which the guest agent reports the composer
// itself: a start event when a template has been chosen, and an exit event
// when the test is over (0) or could not run (1). The underscore keeps it
// apart from a scenario command's name, which cannot hold one.
const ProcName = "test_composer"

// Kind is a test command's type, given by its file name's prefix.
type Kind uint8

// The kinds of test command, in the order of a run's phases.
const (
	First Kind = iota + 1
	ParallelDriver
	SerialDriver
	SingletonDriver
	Anytime
	Eventually
	Finally
)

var kindNames = []string{"", "first", "parallel_driver", "serial_driver", "singleton_driver", "anytime", "eventually", "finally"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && k != 0 {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Prefix is the file name prefix of the kind, like "parallel_driver_".
func (k Kind) Prefix() string { return k.String() + "_" }

// Driver reports whether the kind is one of the three driver kinds.
func (k Kind) Driver() bool { return k == ParallelDriver || k == SerialDriver || k == SingletonDriver }

// Classify returns the kind of a test command's file name, and false for
// any other file (a helper, a README): those are left alone. The prefix
// must be followed by at least one character.
func Classify(name string) (Kind, bool) {
	for k := First; k <= Finally; k++ {
		if rest, ok := strings.CutPrefix(name, k.Prefix()); ok && rest != "" {
			return k, true
		}
	}
	return 0, false
}

// IsCommand reports whether name is a test command's file name.
func IsCommand(name string) bool {
	_, ok := Classify(name)
	return ok
}

// Template is one test template: its name and its test commands, sorted
// by name, without the other files of its directory.
type Template struct {
	Name     string
	Commands []string
}

// ErrNoDriver is wrapped by NewTemplate's error for a template that could
// not drive anything.
var ErrNoDriver = errors.New("no parallel_driver_, serial_driver_, singleton_driver_ or anytime_ command")

// NewTemplate makes the template name of the files of its directory. As in
// Antithesis, a template must have at least one driver or anytime command.
func NewTemplate(name string, files []string) (*Template, error) {
	t := &Template{Name: name}
	drives := false
	for _, f := range files {
		k, ok := Classify(f)
		if !ok {
			continue
		}
		t.Commands = append(t.Commands, f)
		drives = drives || k.Driver() || k == Anytime
	}
	slices.Sort(t.Commands)
	t.Commands = slices.Compact(t.Commands)
	if !drives {
		return nil, fmt.Errorf("template %s: %w", name, ErrNoDriver)
	}
	return t, nil
}

// Of returns the template's commands of kind k, sorted by name.
func (t *Template) Of(k Kind) []string {
	var out []string
	for _, c := range t.Commands {
		if ck, _ := Classify(c); ck == k {
			out = append(out, c)
		}
	}
	return out
}

// Scan lists the templates of a directory laid out like Roots: each
// subdirectory is a template, and its test commands are its entries that
// Classify accepts and are not directories (a symbolic link counts as what
// it points to). Other files, and files directly in fsys, are ignored. The
// result maps template name to command file names, sorted.
func Scan(fsys fs.FS) (map[string][]string, error) {
	top, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, d := range top {
		if strings.HasPrefix(d.Name(), ".") || !isDir(fsys, d) {
			continue
		}
		entries, err := fs.ReadDir(fsys, d.Name())
		if err != nil {
			return nil, err
		}
		cmds := []string{}
		for _, e := range entries {
			if IsCommand(e.Name()) && !isDir(fsys, subEntry{d.Name(), e}) {
				cmds = append(cmds, e.Name())
			}
		}
		out[d.Name()] = cmds
	}
	return out, nil
}

// subEntry is a directory entry of a template, with the template's name
// for isDir to follow a symbolic link.
type subEntry struct {
	dir string
	fs.DirEntry
}

func (e subEntry) Name() string { return path.Join(e.dir, e.DirEntry.Name()) }

func isDir(fsys fs.FS, d fs.DirEntry) bool {
	if d.Type()&fs.ModeSymlink == 0 {
		return d.IsDir()
	}
	st, err := fs.Stat(fsys, d.Name())
	return err == nil && st.IsDir()
}

// Pick returns the template to run: want if it is not empty, else one of
// names (which must be sorted) drawn from rng, as Antithesis picks one
// template per timeline.
func Pick(names []string, want string, rng *rand.Rand) (string, error) {
	if want != "" {
		if !slices.Contains(names, want) {
			return "", fmt.Errorf("no template %q (have: %s)", want, strings.Join(names, ", "))
		}
		return want, nil
	}
	if len(names) == 0 {
		return "", errors.New("no test template")
	}
	return names[rng.IntN(len(names))], nil
}
