package cluster

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/detvm/detvm/scenario"
	"github.com/detvm/detvm/workload/history"
	"github.com/detvm/detvm/workload/sdk"
)

// recordTo writes a history through a Recorder: each step is
// (process, f, key, value, outcome, result), invoked and completed at once,
// so the ops are sequential.
type step struct {
	p       int
	f, key  string
	value   any
	outcome history.Type
	result  any
}

func writeHistory(t *testing.T, dir string, steps []step) {
	t.Helper()
	var buf bytes.Buffer
	clock := int64(1e9)
	rec := history.NewRecorder(&buf, func() int64 { clock += 1e6; return clock })
	for _, s := range steps {
		inv, err := rec.Invoke(s.p, s.f, s.key, s.value)
		if err != nil {
			t.Fatal(err)
		}
		switch s.outcome {
		case history.OK:
			_, err = rec.Ok(inv, s.result)
		case history.Fail:
			_, err = rec.Fail(inv, nil)
		default:
			_, err = rec.Info(inv, nil)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, HistoryFile), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

var register = &scenario.Scenario{Epoch: time.Millisecond,
	Check: scenario.Check{History: scenario.HistoryLinearizableRegister, Timeout: 10 * time.Second}}

func TestCheckHistoryLinear(t *testing.T) {
	dir := t.TempDir()
	writeHistory(t, dir, []step{
		{0, history.FWrite, "x", 1, history.OK, nil},
		{1, history.FRead, "x", nil, history.OK, 1},
		{0, history.FCAS, "x", []int{1, 2}, history.OK, nil},
		{1, history.FRead, "x", nil, history.OK, 2},
	})
	hc := CheckHistory(dir, register)
	if hc.Verdict.Status != "passed" || hc.First != nil || hc.Verdict.Property != "history:linearizable-register" {
		t.Fatalf("%+v", hc)
	}
	if _, err := os.Stat(filepath.Join(dir, LinearizabilityHTML)); err != nil {
		t.Fatal(err)
	}

	// A stale read: 1 after the cas to 2 completed.
	writeHistory(t, dir, []step{
		{0, history.FWrite, "x", 1, history.OK, nil},
		{0, history.FCAS, "x", []int{1, 2}, history.OK, nil},
		{1, history.FRead, "x", nil, history.OK, 1},
		{1, history.FRead, "y", nil, history.OK, nil},
	})
	hc = CheckHistory(dir, register)
	t.Log(hc.Verdict.Message)
	if hc.Verdict.Status != "failed" || hc.First == nil || hc.First.Index != 5 || hc.First.Process != 1 || hc.First.Time != 1e9+6e6 {
		t.Fatalf("%+v %+v", hc.Verdict, hc.First)
	}
	if hc.Verdict.FirstFailure != nil {
		t.Fatalf("first failure %+v without any events.jsonl", hc.Verdict.FirstFailure)
	}
	// The controller collected op i at epoch 10+i from the sidecar's
	// "workload" process; its events.jsonl says so.
	hist, err := os.ReadFile(filepath.Join(dir, HistoryFile))
	if err != nil {
		t.Fatal(err)
	}
	var events bytes.Buffer
	for i, line := range bytes.Split(bytes.TrimSpace(hist), []byte("\n")) {
		msg, err := sdk.HistoryMessage(line)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(eventJSON{Epoch: uint64(10 + i), Kind: "sdk", Proc: "workload", Data: string(msg)})
		events.Write(append(b, '\n'))
	}
	os.MkdirAll(filepath.Join(dir, "sidecar"), 0o755)
	os.WriteFile(filepath.Join(dir, "sidecar", "events.jsonl"), events.Bytes(), 0o644)
	hc = CheckHistory(dir, register)
	want := FirstFailure{Epoch: 15, VirtualNS: 15e6, Node: "sidecar", Proc: "workload", Message: "#5 p1 ok read x 1 (guest clock 1.006000s)"}
	if f := hc.Verdict.FirstFailure; f == nil || *f != want || hc.Verdict.Kind != "history" {
		t.Fatalf("first failure %+v, kind %q; want %+v", f, hc.Verdict.Kind, want)
	}
	for _, want := range []string{"key x: after 2 of its 3 operations the register is 2", "#5 p1 ok read x 1 at 1.006000s", LinearizabilityHTML} {
		if !strings.Contains(hc.Verdict.Message, want) {
			t.Errorf("message lacks %q: %s", want, hc.Verdict.Message)
		}
	}
}

func TestCheckHistoryListAppend(t *testing.T) {
	dir := t.TempDir()
	la := &scenario.Scenario{Check: scenario.Check{History: scenario.HistoryListAppend, Timeout: 10 * time.Second}}
	writeHistory(t, dir, []step{
		{0, history.FTxn, "", history.Txn{history.Append("x", 1)}, history.OK, nil},
		{1, history.FTxn, "", history.Txn{history.ReadKey("x")}, history.OK, history.Txn{history.ReadResult("x", []int64{1})}},
	})
	if hc := CheckHistory(dir, la); hc.Verdict.Status != "passed" {
		t.Fatalf("%+v", hc.Verdict)
	}
	// A read of an element nobody appended.
	writeHistory(t, dir, []step{
		{0, history.FTxn, "", history.Txn{history.Append("x", 1)}, history.OK, nil},
		{1, history.FTxn, "", history.Txn{history.ReadKey("x")}, history.OK, history.Txn{history.ReadResult("x", []int64{1, 9})}},
	})
	hc := CheckHistory(dir, la)
	t.Log(hc.Verdict.Message)
	if hc.Verdict.Status != "failed" || hc.First == nil || hc.First.Process != 1 || !strings.Contains(hc.Verdict.Message, "garbage-read") {
		t.Fatalf("%+v %+v", hc.Verdict, hc.First)
	}
}

func TestCheckHistoryUnusable(t *testing.T) {
	dir := t.TempDir()
	if hc := CheckHistory(dir, register); hc.Verdict.Status != "unknown" || !strings.Contains(hc.Verdict.Message, "no history") {
		t.Errorf("missing file: %+v", hc.Verdict)
	}
	os.WriteFile(filepath.Join(dir, HistoryFile), nil, 0o644)
	if hc := CheckHistory(dir, register); hc.Verdict.Status != "unknown" || !strings.Contains(hc.Verdict.Message, "empty") {
		t.Errorf("empty file: %+v", hc.Verdict)
	}
	os.WriteFile(filepath.Join(dir, HistoryFile), []byte(`{"index":0,"type":"ok","process":0,"f":"read","value":1,"time":5}`+"\n"), 0o644)
	if hc := CheckHistory(dir, register); hc.Verdict.Status != "failed" || !strings.Contains(hc.Verdict.Message, "malformed history") {
		t.Errorf("completion without invocation: %+v", hc.Verdict)
	}
	os.WriteFile(filepath.Join(dir, HistoryFile), []byte("{\"index\":0,\"tpye\":\"ok\"}\n"), 0o644)
	if hc := CheckHistory(dir, register); hc.Verdict.Status != "failed" || !strings.Contains(hc.Verdict.Message, "line 1") {
		t.Errorf("bad line: %+v", hc.Verdict)
	}
}

// TestCheckHistoryBudget: a check that cannot finish in its budget is
// unknown, never a verdict.
func TestCheckHistoryBudget(t *testing.T) {
	dir := t.TempDir()
	var steps []step
	for i := range 200 {
		steps = append(steps, step{i, history.FWrite, "x", i, history.Info, nil})
	}
	steps = append(steps, step{1000, history.FRead, "x", nil, history.OK, 5000})
	writeHistory(t, dir, steps)
	hc := CheckHistory(dir, &scenario.Scenario{Check: scenario.Check{History: scenario.HistoryLinearizableRegister, Timeout: time.Millisecond}})
	if hc.Verdict.Status != "unknown" || !strings.Contains(hc.Verdict.Message, "check.timeout") {
		t.Fatalf("%+v", hc.Verdict)
	}
}
