package cluster

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/detvm/detvm/guest/composer"
	"github.com/detvm/detvm/images"
	"github.com/detvm/detvm/scenario"
	"github.com/detvm/detvm/wire"
)

func composerExample(t *testing.T) *scenario.Scenario {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	s, err := scenario.Load(filepath.Join(filepath.Dir(file), "..", "examples", "composer", "scenario.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(); err != nil {
		t.Fatal(err)
	}
	return s
}

// The sidecar's image holds the test directory, symbolic links followed,
// at Antithesis' place, and its config the test.
func TestTestImage(t *testing.T) {
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("no /bin/busybox")
	}
	kern := testKernel(t)
	s := composerExample(t)
	img, err := nodeImage(s, s.Sidecar, kern, "/bin/busybox", "/bin/busybox", images.DiskImage{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"main/first_setup.sh", "main/helper_lib.sh", "failing/parallel_driver_flaky.sh", "failing/finally_done.sh"} {
		if !img.Has(scenario.TestGuestDir + "/" + p) {
			t.Errorf("%s not in the image", p)
		}
	}
	b, err := img.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	raw, ok := findFile(t, b, scenario.TestGuestDir+"/failing/finally_done.sh")
	if want, _ := os.ReadFile(filepath.Join(s.Dir, "test/main/finally_done.sh")); !ok || string(raw) != string(want) {
		t.Errorf("a symbolic link was not copied as its target: %q", raw)
	}
	raw, _ = findFile(t, b, wire.ConfigPath)
	var cfg wire.Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	if want := (wire.Test{Template: "main", DurationNS: uint64(4 * time.Second), Parallelism: 2}); cfg.Test == nil || *cfg.Test != want {
		t.Errorf("config test %+v, want %+v", cfg.Test, want)
	}
}

// A test command's verdict counts every run: the first failing run decides
// it; a command still running with no run over is unknown; the composer
// must have ended.
func TestTestVerdicts(t *testing.T) {
	dir := t.TempDir()
	n := &node{spec: &scenario.Node{Name: "sidecar", Sidecar: true, Test: &scenario.Test{}}, dir: dir, exits: map[string]int{}}
	var err error
	if n.events, err = os.Create(filepath.Join(dir, "events.jsonl")); err != nil {
		t.Fatal(err)
	}
	defer n.events.Close()
	n.out = bufio.NewWriter(&strings.Builder{})
	ev := func(epoch uint64, kind wire.Kind, proc string, code int32) {
		n.record(epoch, wire.Event{Kind: kind, Proc: proc, Code: code})
	}
	ev(1, wire.KindStart, composer.ProcName, 0)
	for i, code := range []int32{0, 0, 3, 0, 1} {
		ev(uint64(10+i), wire.KindStart, "parallel_driver_put.sh", 0)
		ev(uint64(10+i), wire.KindExit, "parallel_driver_put.sh", code)
	}
	ev(20, wire.KindStart, "parallel_driver_get.sh", 0)
	ev(21, wire.KindExit, "parallel_driver_get.sh", 0)
	ev(22, wire.KindStart, "parallel_driver_get.sh", 0) // still running at the end
	ev(30, wire.KindStart, "eventually_alive.sh", 0)
	res := &Result{ExitCodes: map[string]int{}}
	n.verdicts(res)
	got := map[string]string{}
	for _, v := range res.Verdicts {
		got[v.Property] = v.Status + ": " + v.Message
	}
	want := map[string]string{
		"exit:sidecar/parallel_driver_put.sh": "failed: a run exited with 3 (the first that failed)",
		"exit:sidecar/parallel_driver_get.sh": "passed: every run exited 0",
		"exit:sidecar/eventually_alive.sh":    "unknown: still running when the run ended",
		"exit:sidecar/test_composer":          "unknown: the run ended before the test did: raise the run's duration, or lower test.duration",
	}
	if len(got) != len(want) {
		t.Errorf("verdicts %v", got)
	}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s: %q, want %q", p, got[p], w)
		}
	}
	if res.ExitCodes["sidecar/parallel_driver_put.sh"] != 3 {
		t.Errorf("exit codes %v", res.ExitCodes)
	}
	ev(40, wire.KindExit, composer.ProcName, 0)
	res = &Result{ExitCodes: map[string]int{}}
	n.verdicts(res)
	for _, v := range res.Verdicts {
		if v.Property == "exit:sidecar/test_composer" && v.Status != "passed" {
			t.Errorf("composer after its exit: %+v", v)
		}
	}
}
