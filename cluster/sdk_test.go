package cluster_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/detvm/detvm/cluster"
	"github.com/detvm/detvm/internal/testenv"
	"github.com/detvm/detvm/scenario"
	"github.com/detvm/detvm/workload/history"
)

// TestSDK runs examples/sdk: a Go program using workload/sdk and a shell
// command using the detvm-sdk helper. It checks the property verdicts (a
// sometimes that never held fails the run), the history both recorded,
// what output.log shows, and that a second run has the same trace.
func TestSDK(t *testing.T) {
	tools := testenv.Tools(t)
	dir := filepath.Join(testenv.RepoRoot(), "examples", "sdk")
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, "sdkdemo", "sdkdemo"), "./examples/sdk/sdkdemo")
	build.Dir = testenv.RepoRoot()
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build examples/sdk/sdkdemo: %v\n%s", err, b)
	}
	s, err := scenario.Load(filepath.Join(dir, "scenario.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	res := run(t, tools, s, 1)
	if res.Ended != "all-exited" {
		t.Errorf("ended %s", res.Ended)
	}
	if !res.Failed() {
		t.Errorf("the run passed, but \"never true\" never held")
	}
	var got []string
	for _, v := range res.Verdicts {
		line := fmt.Sprintf("%s %s %q: %s", v.Status, v.Kind, v.Property, v.Message)
		if f := v.FirstFailure; f != nil {
			line += fmt.Sprintf(" [first %s/%s epoch %d]", f.Node, f.Proc, f.Epoch)
		}
		got = append(got, line)
	}
	want := []string{
		`passed exit "exit:node-1/sdkdemo": `,
		`passed exit "exit:node-1/shell": `,
		`passed always "go: a read sees the last write": true in 1 evaluation`,
		`passed reachable "go: reached the end": reached once`,
		`passed sometimes "go: the workload ran": true in 1 of 1 evaluation`,
		`passed reachable "here": reached once`,
		`failed sometimes "never true": never true in 1 evaluation`,
		`passed always "x ok": true in 1 evaluation`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("verdicts:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if res.SetupCompleteEpoch == 0 || res.SetupCompleteEpoch > 1000 {
		t.Errorf("setup_complete_epoch %d: want the epoch sdkdemo started in", res.SetupCompleteEpoch)
	}
	if len(res.PropertyWarnings) > 0 {
		t.Errorf("warnings: %q", res.PropertyWarnings)
	}

	// history.jsonl: sdkdemo's four ops, then the shell's two, as sent.
	hist, err := os.ReadFile(filepath.Join(res.RunDir, cluster.HistoryFile))
	if err != nil {
		t.Fatal(err)
	}
	ops, err := history.Read(bytes.NewReader(hist))
	if err != nil {
		t.Fatalf("history.jsonl: %v\n%s", err, hist)
	}
	if len(ops) != 6 {
		t.Fatalf("history.jsonl has %d ops, want 6:\n%s", len(ops), hist)
	}
	for i, op := range ops {
		if op.Index != int64(i) {
			t.Errorf("op %d has index %d", i, op.Index)
		}
	}
	lines := strings.Split(strings.TrimSpace(string(hist)), "\n")
	if want := `{"index":5,"type":"ok","process":1,"f":"read","key":"x","value":7,"time":1000000001}`; lines[5] != want {
		t.Errorf("last op %s, want %s", lines[5], want)
	}
	if _, err := history.Pairs(ops); err != nil {
		t.Errorf("history does not pair up: %v", err)
	}

	out, err := os.ReadFile(filepath.Join(res.RunDir, "node-1", "output.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{
		`shell/sdk: always "x ok" true {"from":"shell"}`,
		`shell/sdk: sometimes "never true" false`,
		`shell/sdk: reachable "here" true`,
		`shell/sdk: history {"index":4,`,
		`sdkdemo/sdk: setup_complete {"node":"node-1"}`,
		`sdkdemo/sdk: always "go: a read sees the last write" true {"read":7}`,
		`sdkdemo/sdk: guidance "go: ops" 2`,
		`shell/stdout: random `,
		`sdkdemo/stdout: random `,
	} {
		if !strings.Contains(string(out), w) {
			t.Errorf("output.log lacks %q", w)
		}
	}
	if strings.Contains(string(out), "detvm-sdk:") {
		t.Errorf("a message fell back to stderr:\n%s", out)
	}
	ev, err := os.ReadFile(filepath.Join(res.RunDir, "node-1", "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ev), `"kind":"sdk","proc":"shell","data":"{\"type\":\"assert\",\"assert\":\"always\",\"message\":\"x ok\"`) {
		t.Errorf("events.jsonl lacks the shell's always as received")
	}
	var fromFile cluster.Result
	b, err := os.ReadFile(filepath.Join(res.RunDir, "result.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &fromFile); err != nil {
		t.Fatal(err)
	}
	if len(fromFile.Verdicts) != len(res.Verdicts) || fromFile.Verdicts[0].Kind != "exit" || fromFile.SetupCompleteEpoch != res.SetupCompleteEpoch {
		t.Errorf("result.json verdicts %+v", fromFile.Verdicts)
	}

	again := run(t, tools, s, 1)
	if again.TraceHash != res.TraceHash {
		t.Errorf("second run: trace %s, first %s", again.TraceHash, res.TraceHash)
	}
	hist2, _ := os.ReadFile(filepath.Join(again.RunDir, cluster.HistoryFile))
	if !bytes.Equal(hist, hist2) {
		t.Errorf("history differs between runs:\n%s\n%s", hist, hist2)
	}
	if again.SetupCompleteEpoch != res.SetupCompleteEpoch {
		t.Errorf("setup_complete_epoch %d then %d", res.SetupCompleteEpoch, again.SetupCompleteEpoch)
	}
}
