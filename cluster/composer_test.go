package cluster_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/detvm/detvm/cluster"
	"github.com/detvm/detvm/guest/composer"
	"github.com/detvm/detvm/internal/testenv"
	"github.com/detvm/detvm/scenario"
)

// sidecarEvent is a line of the sidecar's events.jsonl.
type sidecarEvent struct {
	Epoch uint64 `json:"epoch"`
	T     uint64 `json:"t_ns"`
	Kind  string `json:"kind"`
	Proc  string `json:"proc"`
	Code  *int32 `json:"code"`
	Data  string `json:"data"`
}

func sidecarEvents(t *testing.T, res *cluster.Result) []sidecarEvent {
	t.Helper()
	f, err := os.Open(filepath.Join(res.RunDir, "sidecar", "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []sidecarEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e sidecarEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// checkComposerRun replays the sidecar's starts and exits and checks the
// rules of docs/composer.md: first_ alone and first; drivers and anytime_
// commands only before test.duration, serial drivers alone, at most
// parallelism parallel drivers, one instance of an anytime_ command at a
// time; eventually_ then finally_ after everything else, one at a time;
// the composer's own exit last. It returns how many of each kind started.
func checkComposerRun(t *testing.T, res *cluster.Result, test *scenario.Test) map[composer.Kind]int {
	t.Helper()
	evs := sidecarEvents(t, res)
	// The composer's time 0 is the sidecar's first barrier, right before
	// the agent seeds the kernel RNG.
	origin := uint64(0)
	for _, e := range evs {
		if e.Kind == "log" && e.Data == "seeded kernel rng" {
			origin = e.T
			break
		}
	}
	if origin == 0 {
		t.Fatal("no \"seeded kernel rng\" event in the sidecar's events")
	}
	deadline := origin + uint64(test.Duration) + uint64(10*time.Millisecond)
	running := map[string]int{}
	kinds := map[composer.Kind]int{}
	started := map[composer.Kind]int{}
	composerDone := false
	var trace []string
	for _, e := range evs {
		if e.Kind != "start" && e.Kind != "exit" {
			continue
		}
		trace = append(trace, fmt.Sprintf("%.3fs %s %s", float64(e.T-origin)/1e9, e.Kind, e.Proc))
		if composerDone {
			t.Fatalf("%s %s after the composer's exit:\n%s", e.Kind, e.Proc, strings.Join(trace, "\n"))
		}
		busy := 0
		for _, n := range running {
			busy += n
		}
		if e.Proc == composer.ProcName {
			composerDone = e.Kind == "exit"
			if composerDone && (e.Code == nil || *e.Code != 0 || busy > 0) {
				t.Fatalf("composer exit (%s) with %v running:\n%s", e.Data, running, strings.Join(trace, "\n"))
			}
			continue
		}
		k, ok := composer.Classify(e.Proc)
		if !ok {
			continue // the sidecar's own processes
		}
		if e.Kind == "exit" {
			running[e.Proc]--
			kinds[k]--
			continue
		}
		fail := func(why string) {
			t.Helper()
			t.Fatalf("%s starts at %.3fs: %s (running %v)\n%s", e.Proc, float64(e.T-origin)/1e9, why, running, strings.Join(trace, "\n"))
		}
		drivers := kinds[composer.ParallelDriver] + kinds[composer.SerialDriver] + kinds[composer.SingletonDriver]
		switch {
		case kinds[composer.First] > 0:
			fail("while first_ runs")
		case k == composer.First && len(started) > 0:
			fail("first_ is not first")
		case k.Driver() || k == composer.Anytime:
			if e.T >= deadline {
				fail("after test.duration")
			}
			if started[composer.Eventually]+started[composer.Finally] > 0 {
				fail("after the checks began")
			}
		case k == composer.Eventually || k == composer.Finally:
			if e.T < deadline-uint64(20*time.Millisecond) {
				fail("before test.duration")
			}
			if busy > 0 {
				fail("beside other commands")
			}
			if k == composer.Eventually && started[composer.Finally] > 0 {
				fail("after finally_")
			}
		}
		switch k {
		case composer.ParallelDriver:
			if kinds[composer.SerialDriver] > 0 || kinds[composer.ParallelDriver] >= test.Parallelism {
				fail("beside a serial driver or beyond the parallelism")
			}
		case composer.SerialDriver:
			if drivers > 0 {
				fail("beside another driver")
			}
		case composer.Anytime:
			if running[e.Proc] > 0 {
				fail("beside itself")
			}
		}
		running[e.Proc]++
		kinds[k]++
		started[k]++
	}
	if !composerDone {
		t.Fatalf("the composer did not finish:\n%s", strings.Join(trace, "\n"))
	}
	t.Logf("started: %v", started)
	return started
}

// TestComposer runs examples/composer: a test directory with every kind of
// command, in template main twice (the same trace) and in template failing
// once, whose driver fails on purpose.
func TestComposer(t *testing.T) {
	tools := testenv.Tools(t)
	s, err := scenario.Load(testenv.Example(t, "composer"))
	if err != nil {
		t.Fatal(err)
	}
	a := run(t, tools, s, 1)
	if a.Failed() || a.Ended != "all-exited" {
		t.Fatalf("main did not pass: ended %s, verdicts %+v", a.Ended, a.Verdicts)
	}
	started := checkComposerRun(t, a, s.Sidecar.Test)
	for _, k := range []composer.Kind{composer.First, composer.ParallelDriver, composer.SerialDriver, composer.Anytime, composer.Eventually, composer.Finally} {
		want := 1
		if k == composer.ParallelDriver {
			want = 2 // with parallelism 2, over 4s
		}
		if started[k] < want {
			t.Errorf("%d %s run(s), want at least %d", started[k], k, want)
		}
	}
	if started[composer.First] != 1 || started[composer.Eventually] != 1 || started[composer.Finally] != 1 {
		t.Errorf("first_, eventually_ and finally_ must run once each: %v", started)
	}
	verdicts := map[string]cluster.Verdict{}
	for _, v := range a.Verdicts {
		verdicts[v.Property] = v
	}
	for _, p := range []string{"first_setup.sh", "eventually_alive.sh", "finally_done.sh", composer.ProcName} {
		if v := verdicts["exit:sidecar/"+p]; v.Status != "passed" {
			t.Errorf("%s: %+v", p, v)
		}
	}
	out, err := os.ReadFile(filepath.Join(a.RunDir, "sidecar", "output.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"first_setup.sh/stdout: first_setup.sh #1: node-1 is up", "finally_done.sh/stdout: finally_done.sh #", "composer: template main: 1 first, 2 parallel_driver"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output.log lacks %q", want)
		}
	}
	if b := run(t, tools, s, 1); b.TraceHash != a.TraceHash {
		t.Errorf("two runs with seed 1: trace %s, then %s", a.TraceHash, b.TraceHash)
	}

	t.Run("failing", func(t *testing.T) {
		s.Sidecar.Test.Template = "failing"
		res := run(t, tools, s, 1)
		started := checkComposerRun(t, res, s.Sidecar.Test)
		var flaky cluster.Verdict
		for _, v := range res.Verdicts {
			if v.Property == "exit:sidecar/parallel_driver_flaky.sh" {
				flaky = v
			}
		}
		if !res.Failed() || flaky.Status != "failed" || !strings.Contains(flaky.Message, "exited with 1") {
			t.Errorf("the flaky driver's property: %+v", flaky)
		}
		if started[composer.Finally] != 0 || started[composer.Eventually] != 1 {
			t.Errorf("after a failed driver: %v (want eventually_, no finally_)", started)
		}
		out, _ := os.ReadFile(filepath.Join(res.RunDir, "sidecar", "output.log"))
		if !strings.Contains(string(out), "composer: finally_ commands skipped: parallel_driver_flaky.sh exited with 1") {
			t.Errorf("output.log does not say why finally_ was skipped")
		}
	})
}
