package scenario

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const testHead = "duration: 20s\nnodes: [{name: a, binary: b}]\nsidecar:\n"

func TestTestParse(t *testing.T) {
	for _, c := range []struct {
		name, yaml string
		want       Test
	}{
		{"defaults", "  test: {dir: ./t}\n", Test{Dir: "./t", Duration: 15 * time.Second, Parallelism: 3}},
		{"all", "  test:\n    dir: /srv/t\n    template: main\n    duration: 12s\n    parallelism: 5\n",
			Test{Dir: "/srv/t", Template: "main", Duration: 12 * time.Second, Parallelism: 5}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := Parse([]byte(testHead+c.yaml), "x.yaml")
			if err != nil {
				t.Fatal(err)
			}
			got := *s.Sidecar.Test
			got.dirLine, got.templateLine = 0, 0
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("test %+v, want %+v", got, c.want)
			}
		})
	}
	// A test alone is something for the sidecar to run.
	if _, err := Parse([]byte(testHead+"  memory: 128\n  test: {dir: t}\n"), "x.yaml"); err != nil {
		t.Errorf("a sidecar with only a test: %v", err)
	}
}

func TestTestParseErrors(t *testing.T) {
	for _, c := range []struct{ name, yaml, want string }{
		{"scalar", testHead + "  test: ./t\n",
			`x.yaml:4: sidecar.test: is a single value, not a mapping; give the directory of test templates, like test: {dir: ./test, duration: 20s}`},
		{"no dir", testHead + "  test: {duration: 5s}\n",
			`x.yaml:4: sidecar.test.dir: required field is missing; give the host directory of test templates, like test: {dir: ./test, duration: 20s}`},
		{"misspelt", testHead + "  test: {dir: t, parallelsm: 2}\n",
			`x.yaml:4: sidecar.test.parallelsm: unknown field; did you mean "parallelism"? (allowed: dir, template, duration, parallelism)`},
		{"too long", testHead + "  test: {dir: t, duration: 20s}\n",
			`x.yaml:4: sidecar.test.duration: 20s is not shorter than the run's duration (20s); drivers must stop before the run ends, to leave time for eventually_ and finally_ commands; try 15s`},
		{"zero", testHead + "  test: {dir: t, duration: 0s}\n",
			`x.yaml:4: sidecar.test.duration: 0s is not greater than 0; give the drivers a positive virtual time like 20s`},
		{"parallelism", testHead + "  test: {dir: t, parallelism: 0}\n",
			`x.yaml:4: sidecar.test.parallelism: 0 is out of range; use a whole number between 1 and 64, like 3`},
		{"parallelism text", testHead + "  test: {dir: t, parallelism: many}\n",
			`x.yaml:4: sidecar.test.parallelism: "many" is not a whole number; use a whole number between 1 and 64, like 3`},
		{"template path", testHead + "  test: {dir: t, template: a/b}\n",
			`x.yaml:4: sidecar.test.template: "a/b" is not a directory name; give the name of a subdirectory of dir, like main`},
		{"on a node", "duration: 2s\nnodes: [{name: a, binary: b, test: {dir: t}}]\n",
			`x.yaml:2: nodes[0].test: unknown field; test is a field of the sidecar (sidecar:), not of a node (an item of nodes); move it there (allowed here: name, count, binary, args, env, daemon, memory, disk, files, include, commands)`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml), "x.yaml")
			if err == nil || err.Error() != c.want {
				t.Errorf("got  %v\nwant %s", err, c.want)
			}
		})
	}
}

// writeTests makes a directory of templates: each file given is a script,
// executable unless its name ends in "!".
func writeTests(t *testing.T, files ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range files {
		mode := os.FileMode(0o755)
		if strings.HasSuffix(f, "!") {
			f, mode = strings.TrimSuffix(f, "!"), 0o644
		}
		p := filepath.Join(dir, "tests", f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func loadTest(t *testing.T, dir, test string) (*Scenario, error) {
	t.Helper()
	b := "duration: 20s\nnodes: [{name: a, binary: /bin/sh}]\nsidecar:\n  test: " + test + "\n"
	p := filepath.Join(dir, "s.yaml")
	if err := os.WriteFile(p, []byte(b), 0o644); err != nil {
		t.Fatal(err)
	}
	return Load(p)
}

func TestTestLoad(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	dir := writeTests(t, "main/parallel_driver_put.sh", "main/helper_lib.sh!", "main/README!", "other/anytime_x.sh", "other/first_y.sh")
	s, err := loadTest(t, dir, "{dir: tests}")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Sidecar.Test; got.Dir != filepath.Join(dir, "tests") || !reflect.DeepEqual(got.Templates, []string{"main", "other"}) {
		t.Errorf("test %+v", got)
	}
	s, err = loadTest(t, dir, "{dir: tests, template: other}")
	if err != nil || !reflect.DeepEqual(s.Sidecar.Test.Templates, []string{"other"}) {
		t.Errorf("template other: %v, %+v", err, s)
	}

	for _, c := range []struct {
		name  string
		files []string
		test  string
		want  string
	}{
		{"missing", nil, "{dir: nope}", `sidecar.test.dir: nope (resolved to DIR/nope) does not exist on this host; fix the path; relative paths start at the directory of the scenario file`},
		{"file", []string{"main/parallel_driver_a.sh"}, "{dir: tests/main/parallel_driver_a.sh}",
			`sidecar.test.dir: tests/main/parallel_driver_a.sh (resolved to DIR/tests/main/parallel_driver_a.sh) is not a directory; give the directory that holds the test templates, one subdirectory each`},
		{"a template itself", []string{"main/parallel_driver_a.sh", "main/first_b.sh"}, "{dir: tests/main}",
			`sidecar.test.dir: tests/main (resolved to DIR/tests/main) holds test commands itself (first_b.sh, parallel_driver_a.sh), not in a template; dir holds one subdirectory per template: move them into one, like DIR/tests/main/main/`},
		{"empty", []string{"README"}, "{dir: tests}",
			`sidecar.test.dir: tests (resolved to DIR/tests) holds no test template; add a subdirectory per template holding executables named first_*, parallel_driver_*, ... (docs/composer.md)`},
		{"no driver", []string{"main/first_a.sh", "main/finally_b.sh"}, "{dir: tests}",
			`sidecar.test.dir: template main (DIR/tests/main) has no parallel_driver_, serial_driver_, singleton_driver_ or anytime_ command; add at least one, like parallel_driver_put.sh: first_, eventually_ and finally_ commands alone drive nothing`},
		{"not executable", []string{"main/parallel_driver_a.sh!"}, "{dir: tests}",
			`sidecar.test.dir: DIR/tests/main/parallel_driver_a.sh is not executable; make it executable with chmod +x DIR/tests/main/parallel_driver_a.sh`},
		{"unknown template", []string{"main/parallel_driver_a.sh", "b/anytime_c"}, "{dir: tests, template: mian}",
			`sidecar.test.template: "mian" is not a template in DIR/tests; use one of: b, main`},
		// Only the template that runs must be valid.
		{"other template broken", []string{"main/parallel_driver_a.sh", "wip/first_x.sh!"}, "{dir: tests, template: main}", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := writeTests(t, c.files...)
			_, err := loadTest(t, dir, c.test)
			want := strings.ReplaceAll(c.want, "DIR", dir)
			if want != "" {
				want = filepath.Join(dir, "s.yaml") + ":4: " + want
			}
			if got := errText(err); got != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
