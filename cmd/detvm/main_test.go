package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/detvm/detvm/internal/testenv"
)

var detvmBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "detvm-cli-")
	if err != nil {
		panic(err)
	}
	detvmBin = filepath.Join(dir, "detvm")
	if out, err := exec.Command("go", "build", "-o", detvmBin, ".").CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func detvm(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(detvmBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

// TestBadInput tries what a new user gets wrong. Each must give exit code 2
// (4 for a missing QEMU) and one line that says what to do, never a trace.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", "name: ok\nduration: 1s\nnodes:\n  - name: node-1\n    binary: /bin/busybox\n")
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		code int
		want string
	}{
		{"missing binary", nil, []string{"run", write("nobin.yaml", "name: x\nduration: 1s\nnodes:\n  - name: node-1\n    binary: /usr/bin/no-such-program\n")},
			2, "nobin.yaml:5: nodes[0].binary: /usr/bin/no-such-program does not exist"},
		{"yaml typo", nil, []string{"run", write("typo.yaml", "name: x\nduration: 1s\nnodes:\n  - name: node-1\n    binary: [oops\n")},
			2, "typo.yaml:"},
		{"unknown field", nil, []string{"run", write("unknown.yaml", "name: x\nduration: 1s\nnodes:\n  - name: node-1\n    binray: /bin/busybox\n")},
			2, `unknown.yaml:5: nodes[0].binray: unknown field; did you mean "binary"?`},
		{"seed not a number", nil, []string{"run", good, "--seed", "abc"},
			2, `--seed "abc" is not a number`},
		{"missing scenario", nil, []string{"run", filepath.Join(dir, "nope.yaml")},
			2, "nope.yaml"},
		{"no args", nil, []string{"run"}, 2, "accepts 1 arg(s)"},
		{"branch without snapshot", nil, []string{"run", good, "--branch-seed", "9"},
			2, "--branch-seed needs --from-snapshot ID"},
		{"snapshot without store", nil, []string{"run", good, "--from-snapshot", "abcd"},
			2, "--from-snapshot abcd needs --store DIR"},
		{"seed with snapshot", nil, []string{"run", good, "--from-snapshot", "abcd", "--store", dir, "--seed", "3"},
			2, "--seed does not apply with --from-snapshot"},
		{"bad branch seed", nil, []string{"run", good, "--from-snapshot", "abcd", "--store", dir, "--branch-seed", "0"},
			2, `--branch-seed "0": use a positive integer`},
		{"snapshots without barriers", nil, []string{"run", good, "--no-barrier", "--snapshot-every", "1s"},
			2, "--no-barrier cannot be combined with snapshots"},
		{"replay of nothing", nil, []string{"replay", filepath.Join(dir, "nope.detvm")},
			2, "pass the replay.detvm file of a run"},
		{"replay of a non-bundle", nil, []string{"replay", good, "--out", filepath.Join(dir, "r")},
			2, "not a replay bundle"},
		{"qemu missing", []string{"DETVM_QEMU=/nonexistent/qemu-system-x86_64"}, []string{"doctor"},
			4, "FAIL  qemu"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := detvm(t, tc.env, tc.args...)
			out := stdout + stderr
			if code != tc.code {
				t.Errorf("exit code %d, want %d; output:\n%s", code, tc.code, out)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("output lacks %q:\n%s", tc.want, out)
			}
			if strings.Contains(out, "goroutine ") || strings.Contains(out, "panic") {
				t.Errorf("stack trace in output:\n%s", out)
			}
			if tc.code == 2 && strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
				t.Errorf("want a one-line error, got:\n%s", stderr)
			}
		})
	}
}

// TestNoOrphanQEMU kills the controller with SIGKILL mid-run: QEMU must die
// with it (Pdeathsig), and only the run dir is left behind.
func TestNoOrphanQEMU(t *testing.T) {
	tools := testenv.Tools(t)
	scen := testenv.Example(t, "hello")
	out := filepath.Join(t.TempDir(), "run")
	cmd := exec.Command(detvmBin, "run", scen, "--out", out)
	cmd.Env = append(os.Environ(), "DETVM_AGENT="+tools.Agent)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	console := filepath.Join(out, "node-1", "console.log")
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(console); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("QEMU never started")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if qemuRunning(out) == "" {
		t.Fatal("no QEMU process found for the run")
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	deadline = time.Now().Add(10 * time.Second)
	for qemuRunning(out) != "" {
		if time.Now().After(deadline) {
			t.Fatalf("QEMU outlived its controller: %s", qemuRunning(out))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// qemuRunning returns the pids of QEMU processes whose argv mentions dir.
func qemuRunning(dir string) string {
	o, _ := exec.Command("pgrep", "-f", "qemu-system.*"+dir).Output()
	return strings.TrimSpace(string(o))
}

// TestRepeat: --repeat runs the scenario N times and reports agreement.
func TestRepeat(t *testing.T) {
	tools := testenv.Tools(t)
	out := filepath.Join(t.TempDir(), "rep")
	stdout, stderr, code := detvm(t, []string{"DETVM_AGENT=" + tools.Agent}, "run", testenv.Example(t, "hello"), "--repeat", "2", "--out", out)
	if code != 0 || !strings.Contains(stdout, "2/2 runs identical to run 1") {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	for _, run := range []string{"1", "2"} {
		if _, err := os.Stat(filepath.Join(out, run, "trace.log")); err != nil {
			t.Errorf("run %s left no trace.log: %v", run, err)
		}
	}
}
