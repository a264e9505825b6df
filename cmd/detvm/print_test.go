package main

import (
	"io"
	"os"
	"strings"
	"testing"

	"github.com/detvm/detvm/cluster"
)

// TestPrintResultVerdicts: SDK verdicts show their kind and where they
// first failed; exit verdicts read as before.
func TestPrintResultVerdicts(t *testing.T) {
	r := &cluster.Result{RunDir: "runs/x", TraceHash: "abc", Verdicts: []cluster.Verdict{
		{Property: "exit:node-1/sh", Status: "failed", Kind: "exit", Message: "exited with 1",
			FirstFailure: &cluster.FirstFailure{Epoch: 7, VirtualNS: 7e6, Node: "node-1", Proc: "sh", Message: "exited with 1"}},
		{Property: "never true", Status: "failed", Kind: "sometimes", Message: "never true in 1 evaluation"},
		{Property: "x ok", Status: "failed", Kind: "always", Message: "false in 1 of 2 evaluations",
			FirstFailure: &cluster.FirstFailure{Epoch: 1042, VirtualNS: 1042e6, Node: "node-1", Message: "condition false"}},
	}, PropertyWarnings: []string{`property "m" is asserted as always and sometimes`}}
	out := captureStdout(t, func() { printResult(r) })
	for _, want := range []string{
		"  failed   exit:node-1/sh (exited with 1)\n           first failed at epoch 7 (0.007 s virtual) on node-1/sh: exited with 1\n",
		"  failed   sometimes \"never true\" (never true in 1 evaluation)\n  failed   always",
		"  failed   always \"x ok\" (false in 1 of 2 evaluations)\n           first failed at epoch 1042 (1.042 s virtual) on node-1: condition false\n",
		"warning   property \"m\" is asserted as always and sometimes\nverdict   FAILED\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func captureStdout(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() { b, _ := io.ReadAll(r); done <- string(b) }()
	f()
	os.Stdout = old
	w.Close()
	return <-done
}
