package composer

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestClassify(t *testing.T) {
	for name, want := range map[string]Kind{
		"first_x":                 First,
		"parallel_driver_put.sh":  ParallelDriver,
		"serial_driver_c":         SerialDriver,
		"singleton_driver_all.py": SingletonDriver,
		"anytime_probe":           Anytime,
		"eventually_alive.sh":     Eventually,
		"finally_count.sh":        Finally,
		"first_":                  0,
		"first":                   0,
		"helper_first_x":          0,
		"parallel_put.sh":         0,
		".first_x":                0,
		"Finally_x":               0,
	} {
		k, ok := Classify(name)
		if k != want || ok != (want != 0) {
			t.Errorf("Classify(%q) = %v, %v; want %v", name, k, ok, want)
		}
	}
	if SingletonDriver.Prefix() != "singleton_driver_" || !SerialDriver.Driver() || Anytime.Driver() {
		t.Error("Kind methods")
	}
}

// Scan reads real directories: templates are subdirectories, symlinks
// count as what they point to, other files are ignored.
func TestScan(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	write := func(rel string) {
		p := filepath.Join(dir, rel)
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		must(os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755))
	}
	write("basic/parallel_driver_put.sh")
	write("basic/helper_lib.sh")
	write("basic/sub/first_not_a_command.sh") // in a subdirectory: not a command of basic
	write("other/anytime_x")
	write("first_stray.sh") // not in a template
	write("lib/real.sh")
	must(os.Symlink(filepath.Join(dir, "lib/real.sh"), filepath.Join(dir, "basic/eventually_link.sh")))
	must(os.Mkdir(filepath.Join(dir, "basic/finally_dir"), 0o755))
	must(os.Symlink(filepath.Join(dir, "basic"), filepath.Join(dir, "alias")))
	must(os.Mkdir(filepath.Join(dir, ".hidden"), 0o755))
	got, err := Scan(os.DirFS(dir))
	must(err)
	want := map[string][]string{
		"basic": {"eventually_link.sh", "parallel_driver_put.sh"},
		"alias": {"eventually_link.sh", "parallel_driver_put.sh"},
		"other": {"anytime_x"},
		"lib":   {},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Scan = %v, want %v", got, want)
	}
}

func TestPick(t *testing.T) {
	names := []string{"a", "b", "c"}
	if got, err := Pick(names, "b", nil); got != "b" || err != nil {
		t.Errorf("Pick b = %q, %v", got, err)
	}
	if _, err := Pick(names, "d", nil); err == nil || err.Error() != `no template "d" (have: a, b, c)` {
		t.Errorf("Pick d: %v", err)
	}
	if _, err := Pick(nil, "", rand.New(rand.NewPCG(1, 2))); err == nil {
		t.Error("Pick of nothing did not fail")
	}
	seen := map[string]bool{}
	for seed := uint64(0); seed < 30; seed++ {
		a, _ := Pick(names, "", rand.New(rand.NewPCG(seed, 2)))
		b, _ := Pick(names, "", rand.New(rand.NewPCG(seed, 2)))
		if a != b {
			t.Fatalf("seed %d: %s then %s", seed, a, b)
		}
		seen[a] = true
	}
	if len(seen) != 3 {
		t.Errorf("30 seeds picked only %v", seen)
	}
}
