// Package testenv gives tests the real tools a run needs — QEMU, the guest
// kernel, the static agent — and skips a test with the reason when this
// machine lacks one (`make setup` installs everything).
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/detvm/detvm/cluster"
	"github.com/detvm/detvm/images"
)

var (
	once    sync.Once
	tools   cluster.Tools
	skipWhy string
	// examplesErr is why the examples' Go programs did not build.
	examplesErr error
)

// RepoRoot is the module root, found from this file's location.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}

// Tools returns located tools, building the agent from source when no
// prebuilt one is given, or skips t.
func Tools(t testing.TB) cluster.Tools {
	t.Helper()
	if testing.Short() {
		t.Skip("QEMU test: skipped with -short")
	}
	once.Do(func() {
		examplesErr = buildGoExamples()
		if os.Getenv("DETVM_AGENT") == "" {
			dir, err := os.MkdirTemp("", "detvm-testenv-")
			if err != nil {
				skipWhy = err.Error()
				return
			}
			out := filepath.Join(dir, "detvm-agent")
			cmd := exec.Command("go", "build", "-trimpath", "-o", out, "./cmd/detvm-agent")
			cmd.Dir = RepoRoot()
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if b, err := cmd.CombinedOutput(); err != nil {
				skipWhy = "cannot build the agent: " + string(b)
				return
			}
			os.Setenv("DETVM_AGENT", out)
		}
		var err error
		tools, err = cluster.Locate()
		if err != nil {
			skipWhy = err.Error()
			return
		}
		if _, err := images.LoadKernel(filepath.Join(tools.CacheDir, "kernel")); err != nil {
			skipWhy = err.Error()
		}
	})
	if skipWhy != "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("QEMU prerequisites missing in CI: %s", skipWhy)
		}
		t.Skipf("QEMU prerequisites missing (run `make setup`): %s", skipWhy)
	}
	if examplesErr != nil {
		t.Fatalf("examples' Go programs: %v", examplesErr)
	}
	return tools
}

// Example returns the path of an example scenario, building its bundled
// programs first.
func Example(t testing.TB, name string) string {
	t.Helper()
	root := RepoRoot()
	if name == "hello" {
		out := filepath.Join(root, "examples/hello/rand")
		if _, err := os.Stat(out); err != nil {
			cmd := exec.Command("gcc", "-O2", "-Wall", "-pthread", "-o", out, "rand.c")
			cmd.Dir = filepath.Join(root, "examples/hello")
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("build examples/hello/rand: %v\n%s", err, b)
			}
		}
	}
	return filepath.Join(root, "examples", name, "scenario.yaml")
}
