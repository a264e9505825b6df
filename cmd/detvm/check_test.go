package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheck: detvm check reads a bare history file or a run directory,
// takes the model from the run's result.json when not given one, exits 1
// with the anomaly for a bad history and 2 for bad arguments.
func TestCheck(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A G1c cycle: each transaction saw the other's append.
	cyclic := `{"index":0,"type":"invoke","process":0,"f":"txn","value":[["append","x",1],["r","y",null]],"time":1000}
{"index":1,"type":"invoke","process":1,"f":"txn","value":[["append","y",1],["r","x",null]],"time":2000}
{"index":2,"type":"ok","process":0,"f":"txn","value":[["append","x",1],["r","y",[1]]],"time":3000}
{"index":3,"type":"ok","process":1,"f":"txn","value":[["append","y",1],["r","x",[1]]],"time":4000}
`
	serial := `{"index":0,"type":"invoke","process":0,"f":"txn","value":[["append","x",1]],"time":5000}
{"index":1,"type":"ok","process":0,"f":"txn","value":[["append","x",1]],"time":6000}
{"index":2,"type":"invoke","process":0,"f":"txn","value":[["r","x",null]],"time":7000}
{"index":3,"type":"ok","process":0,"f":"txn","value":[["r","x",[1]]],"time":8000}
`
	registers := `{"index":0,"type":"invoke","process":0,"f":"write","key":"x","value":1,"time":9000}
{"index":1,"type":"ok","process":0,"f":"write","key":"x","value":1,"time":10000}
{"index":2,"type":"invoke","process":0,"f":"read","key":"x","value":null,"time":11000}
{"index":3,"type":"ok","process":0,"f":"read","key":"x","value":2,"time":12000}
`
	bad := write("bad.jsonl", cyclic)
	good := write("good.jsonl", serial)
	stale := write("regs.jsonl", registers)
	run := filepath.Join(dir, "run")
	write("run/history.jsonl", cyclic)
	res, _ := json.Marshal(map[string]any{"epochs": 100, "virtual_ns": 100_000_000,
		"verdicts": []map[string]string{{"property": "history:list-append", "kind": "history", "status": "failed"}}})
	write("run/result.json", string(res))
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		args []string
		code int
		out  string // in stdout (exit 0, 1) or stderr (exit 2)
	}{
		{[]string{good, "--model", "list-append"}, 0, "passed   history:list-append (2 transactions on 1 keys are serializable)"},
		{[]string{bad, "--model", "list-append"}, 1, "G1c"},
		{[]string{stale, "--model", "linearizable-register"}, 1, "not linearizable"},
		{[]string{run}, 1, "failed   history:list-append"},
		{[]string{run, "--model", "list-append", "--json"}, 1, `"status": "failed"`},
		{[]string{bad}, 2, "which model? the run recorded no history check; add --model linearizable-register or --model list-append"},
		{[]string{bad, "--model", "linear"}, 2, `--model "linear": use linearizable-register or list-append`},
		{[]string{bad, "--model", "list-append", "--timeout", "0s"}, 2, "positive time budget"},
		{[]string{filepath.Join(dir, "nope")}, 2, "no such file or directory; give a run directory"},
		{[]string{empty}, 2, "no history.jsonl: the run's workload recorded no history"},
	} {
		stdout, stderr, code := detvm(t, nil, append([]string{"check"}, tc.args...)...)
		got := stdout
		if tc.code == 2 {
			got = stderr
		}
		if code != tc.code || !strings.Contains(got, tc.out) {
			t.Errorf("detvm check %v: exit %d, stdout %q, stderr %q; want exit %d and %q", tc.args, code, stdout, stderr, tc.code, tc.out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "linearizability.html")); err != nil {
		t.Errorf("register check wrote no linearizability.html beside the history: %v", err)
	}
}
