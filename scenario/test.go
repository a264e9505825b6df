package scenario

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/detvm/detvm/guest/composer"
	"github.com/detvm/detvm/internal/yamlwalk"
)

// MaxParallelism bounds Test.Parallelism.
const MaxParallelism = 64

// TestGuestDir is where the sidecar finds Test.Dir's templates: Antithesis'
// place for them.
const TestGuestDir = "/opt/antithesis/test/v1"

// Test is a test in the layout of Antithesis' Test Composer that the
// sidecar runs once its commands are done (test:, docs/composer.md).
type Test struct {
	// Dir is the host directory of test templates, one subdirectory each,
	// copied into the sidecar at TestGuestDir. Load makes it absolute.
	Dir string
	// Template is the template to run; "" draws one per run from the
	// seed, among Templates.
	Template string
	// Duration ends the driver phase: drivers and anytime_ commands start
	// only until this much virtual time after the run's start (epoch 0,
	// from which fault times count too). It is > 0 and less than the
	// run's duration, which leaves the rest for eventually_ and finally_
	// commands. Default: 3/4 of the run's duration.
	Duration time.Duration
	// Parallelism is the most parallel_driver_ commands running at once,
	// between 1 and MaxParallelism; default composer.DefaultParallelism.
	Parallelism int
	// Templates are the names of the templates Load found in Dir, sorted
	// (only Template's when one is given); nil after Parse.
	Templates []string

	dirLine, templateLine int // where Load reports problems with the directory
}

var testSchema = schema{what: "the test (test:)", keys: []string{"dir", "template", "duration", "parallelism"}}

const testExample = "test: {dir: ./test, duration: 20s}"

// test reads the sidecar's test: mapping. The run's duration has been read
// (0 if it is invalid).
func (p *parser) test(v *yaml.Node, runDuration time.Duration) *Test {
	const field = "sidecar.test"
	d := p.Mapping(v, field, "give the directory of test templates, like "+testExample)
	if d == nil {
		return nil
	}
	f := p.fields(d, field, testSchema)
	out := &Test{Parallelism: composer.DefaultParallelism, Duration: runDuration / 4 * 3 / time.Millisecond * time.Millisecond}
	ok := true
	if v := f.Req("dir", "give the host directory of test templates, like "+testExample); v != nil {
		if text, textOK := p.nonEmpty(v, field+".dir", "a path", "give the host directory of test templates, like ./test"); textOK {
			out.Dir, out.dirLine = text, v.Line
		} else {
			ok = false
		}
	} else {
		ok = false
	}
	if v := f.Opt("template"); v != nil {
		text, textOK := p.nonEmpty(v, field+".template", "a name", "give the name of a subdirectory of dir, or leave template out to draw one per run")
		switch {
		case !textOK:
			ok = false
		case strings.ContainsRune(text, '/') || text == "." || text == "..":
			p.fail(v.Line, field+".template", fmt.Sprintf("%q is not a directory name", text), "give the name of a subdirectory of dir, like main")
			ok = false
		default:
			out.Template, out.templateLine = text, v.Line
		}
	}
	if v := f.Opt("duration"); v != nil {
		dur, durOK := p.duration(v, field+".duration")
		switch {
		case !durOK:
			ok = false
		case dur <= 0:
			p.fail(v.Line, field+".duration", fmt.Sprintf("%s is not greater than 0", yamlwalk.Deref(v).Value), "give the drivers a positive virtual time like 20s")
			ok = false
		case runDuration > 0 && dur >= runDuration:
			p.fail(v.Line, field+".duration", fmt.Sprintf("%s is not shorter than the run's duration (%v)", yamlwalk.Deref(v).Value, runDuration),
				fmt.Sprintf("drivers must stop before the run ends, to leave time for eventually_ and finally_ commands; try %v", runDuration/4*3/time.Millisecond*time.Millisecond))
			ok = false
		default:
			out.Duration = dur
		}
	}
	if v := f.Opt("parallelism"); v != nil {
		hint := fmt.Sprintf("use a whole number between 1 and %d, like %d", MaxParallelism, composer.DefaultParallelism)
		if text, textOK := p.Scalar(v, field+".parallelism", "a number", hint); !textOK {
			ok = false
		} else if n, err := strconv.Atoi(text); err != nil {
			p.fail(v.Line, field+".parallelism", fmt.Sprintf("%q is not a whole number", text), hint)
			ok = false
		} else if n < 1 || n > MaxParallelism {
			p.fail(v.Line, field+".parallelism", fmt.Sprintf("%d is out of range", n), hint)
			ok = false
		} else {
			out.Parallelism = n
		}
	}
	if !ok {
		return nil
	}
	return out
}

// checkTest resolves the sidecar's test directory against dir and checks
// what the sidecar will run from it: a directory of templates, each with
// something to drive and with executable commands.
func (p *parser) checkTest(s *Scenario, dir string) {
	if s.Sidecar == nil || s.Sidecar.Test == nil {
		return
	}
	t := s.Sidecar.Test
	const field = "sidecar.test.dir"
	written := t.Dir
	abs := filepath.Clean(written)
	if !filepath.IsAbs(abs) {
		abs = filepath.Join(dir, written)
	}
	t.Dir = abs
	what := abs
	if written != abs {
		what = fmt.Sprintf("%s (resolved to %s)", written, abs)
	}
	st, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		p.fail(t.dirLine, field, what+" does not exist on this host", "fix the path; relative paths start at the directory of the scenario file")
		return
	case err != nil:
		p.fail(t.dirLine, field, fmt.Sprintf("%s cannot be checked: %v", what, err), "make sure you can read it and the directories above it")
		return
	case !st.IsDir():
		p.fail(t.dirLine, field, what+" is not a directory", "give the directory that holds the test templates, one subdirectory each")
		return
	}
	found, err := composer.Scan(os.DirFS(abs))
	if err != nil {
		p.fail(t.dirLine, field, fmt.Sprintf("%s cannot be read: %v", what, err), "make sure you can read it and its subdirectories")
		return
	}
	if stray := strayCommands(abs); len(stray) > 0 {
		p.fail(t.dirLine, field, fmt.Sprintf("%s holds test commands itself (%s), not in a template", what, strings.Join(stray, ", ")),
			fmt.Sprintf("dir holds one subdirectory per template: move them into one, like %s", filepath.Join(abs, "main")+string(filepath.Separator)))
		return
	}
	names := slices.Sorted(maps.Keys(found))
	if len(names) == 0 {
		p.fail(t.dirLine, field, what+" holds no test template", "add a subdirectory per template holding executables named first_*, parallel_driver_*, ... (docs/composer.md)")
		return
	}
	if t.Template != "" {
		if !slices.Contains(names, t.Template) {
			p.fail(t.templateLine, "sidecar.test.template", fmt.Sprintf("%q is not a template in %s", t.Template, abs), "use one of: "+strings.Join(names, ", "))
			return
		}
		names = []string{t.Template}
	}
	for _, name := range names {
		if !p.checkTemplate(t, filepath.Join(abs, name), name, found[name]) {
			return
		}
	}
	t.Templates = names
}

// checkTemplate checks one template's commands; false after reporting the
// first problem.
func (p *parser) checkTemplate(t *Test, dir, name string, cmds []string) bool {
	const field = "sidecar.test.dir"
	for _, c := range cmds {
		path := filepath.Join(dir, c)
		st, err := os.Stat(path)
		switch {
		case err != nil:
			p.fail(t.dirLine, field, fmt.Sprintf("%s cannot be checked: %v", path, err), "fix or remove it")
			return false
		case !st.Mode().IsRegular():
			p.fail(t.dirLine, field, path+" is not a regular file", "a test command is an executable file; rename it if it is not one")
			return false
		case st.Mode().Perm()&0o111 == 0:
			p.fail(t.dirLine, field, path+" is not executable", "make it executable with chmod +x "+path)
			return false
		}
	}
	if _, err := composer.NewTemplate(name, cmds); err != nil {
		p.fail(t.dirLine, field, fmt.Sprintf("template %s (%s) has %v", name, dir, composer.ErrNoDriver),
			"add at least one, like parallel_driver_put.sh: first_, eventually_ and finally_ commands alone drive nothing")
		return false
	}
	return true
}

// strayCommands lists the files directly in dir that are named like test
// commands: a sign that dir was meant to be a template.
func strayCommands(dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if st, err := os.Stat(filepath.Join(dir, e.Name())); err == nil && !st.IsDir() && composer.IsCommand(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out
}
