package cluster

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/detvm/detvm/wire"
)

func sdkEvent(proc, msg string) wire.Event {
	return wire.Event{Kind: wire.KindSDK, Proc: proc, Data: []byte(msg)}
}

// TestPropsSink: output.log text, history.jsonl, setup_complete, verdicts
// after the exits, and a snapshot's state carrying all of it.
func TestPropsSink(t *testing.T) {
	dir := t.TempDir()
	p, err := newPropsSink(dir, 1e6)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	for _, tc := range []struct {
		epoch      uint64
		node, proc string
		msg, text  string
	}{
		{3, "node-1", "sh", `{"type":"assert","assert":"always","message":"x ok","condition":true}`, `always "x ok" true`},
		{3, "node-1", "sh", `{"type":"history","op":{"index":0, "type":"invoke"}}`, `history {"index":0,"type":"invoke"}`},
		{4, "node-1", "sh", `{"type":"setup_complete","details":{ "n": 1 }}`, `setup_complete {"n":1}`},
		{5, "sidecar", "", `{"type":"assert","assert":"sometimes","message":"never true","condition":false,"details":{"k":"v"}}`, `sometimes "never true" false {"k":"v"}`},
		{5, "sidecar", "", `{"type":"history","op":{"index":1,"type":"ok"}}`, `history {"index":1,"type":"ok"}`},
		{6, "sidecar", "w", `{"type":"guidance","name":"depth","value":2.5}`, `guidance "depth" 2.5`},
		{7, "node-1", "sh", `{"type":"setup_complete"}`, `setup_complete`},
		{8, "node-1", "sh", `{"type":"assert","assert":"unreachable","message":"bad","condition":true}`, `unreachable "bad" true`},
		{9, "node-1", "sh", `{"type":"assert","assert":"what"}`, `bad message (assert "what": want one of always, always_or_unreachable, sometimes, reachable, unreachable): {"type":"assert","assert":"what"}`},
	} {
		if got := p.observe(tc.node, tc.epoch, sdkEvent(tc.proc, tc.msg)); got != tc.text {
			t.Errorf("observe(%s):\n got %s\nwant %s", tc.msg, got, tc.text)
		}
	}
	p.exited("node-1", "sh", 10)
	p.exited("node-1", "other", 11)
	p.started("node-1", "other")

	st, err := p.state()
	if err != nil {
		t.Fatal(err)
	}
	res := &Result{}
	p.verdicts(res)
	if err := p.flush(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, HistoryFile))
	if want := "{\"index\":0,\"type\":\"invoke\"}\n{\"index\":1,\"type\":\"ok\"}\n"; string(b) != want {
		t.Errorf("history.jsonl:\n%s\nwant:\n%s", b, want)
	}
	got, _ := json.Marshal(res.Verdicts)
	// Sorted by property.
	want := `[{"property":"bad","status":"failed","message":"reached once","kind":"unreachable","first_failure":{"epoch":8,"virtual_ns":8000000,"node":"node-1","proc":"sh","message":"reached"}},` +
		`{"property":"never true","status":"failed","message":"never true in 1 evaluation","kind":"sometimes"},` +
		`{"property":"x ok","status":"passed","message":"true in 1 evaluation","kind":"always"}]`
	if string(got) != want {
		t.Errorf("verdicts:\n%s\nwant:\n%s", got, want)
	}
	if res.SetupCompleteEpoch != 4 {
		t.Errorf("setup complete epoch %d, want the first, 4", res.SetupCompleteEpoch)
	}
	if len(res.PropertyWarnings) != 1 || !strings.Contains(res.PropertyWarnings[0], `epoch 9, node-1/sh: bad SDK message`) {
		t.Errorf("warnings %q", res.PropertyWarnings)
	}
	if f := p.exitFailure("node-1", "sh", "exited with 1"); f == nil || f.Epoch != 10 || f.VirtualNS != 10e6 || f.Proc != "sh" {
		t.Errorf("exit failure %+v", f)
	}
	if f := p.exitFailure("node-1", "other", "x"); f != nil {
		t.Errorf("a restarted process keeps its old exit: %+v", f)
	}

	// A run continued from a snapshot of this state: the same verdicts,
	// the history so far, and what comes next appended to it.
	enc, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var back *propsState
	if err := json.Unmarshal(enc, &back); err != nil {
		t.Fatal(err)
	}
	dir2 := t.TempDir()
	q, err := newPropsSink(dir2, 1e6)
	if err != nil {
		t.Fatal(err)
	}
	defer q.close()
	if err := q.restore(back); err != nil {
		t.Fatal(err)
	}
	q.observe("node-1", 12, sdkEvent("sh", `{"type":"history","op":{"index":2,"type":"invoke"}}`))
	res2 := &Result{}
	q.verdicts(res2)
	if !reflect.DeepEqual(res2, res) {
		t.Errorf("restored verdicts differ:\n%+v\n%+v", res2, res)
	}
	q.flush()
	b2, _ := os.ReadFile(filepath.Join(dir2, HistoryFile))
	if want := string(b) + "{\"index\":2,\"type\":\"invoke\"}\n"; string(b2) != want {
		t.Errorf("restored history:\n%s\nwant:\n%s", b2, want)
	}
	// Restoring nothing (a warm start) empties the sink.
	if err := q.restore(nil); err != nil {
		t.Fatal(err)
	}
	q.flush()
	if b, _ := os.ReadFile(filepath.Join(dir2, HistoryFile)); len(b) != 0 {
		t.Errorf("history after restore(nil): %q", b)
	}
}

func TestPropsSinkNil(t *testing.T) {
	var p *propsSink
	if got := p.observe("n", 1, sdkEvent("", `{"type":"assert","assert":"reachable","message":"m"}`)); got != `reachable "m" true` {
		t.Errorf("nil sink text %q", got)
	}
	p.exited("n", "p", 1)
	p.verdicts(&Result{})
	if p.exitFailure("n", "p", "m") != nil {
		t.Error("nil sink remembers exits")
	}
}
