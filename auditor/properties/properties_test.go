package properties

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestAggregator runs the scripts in testdata/. Command:
//
//	observe               feed the input, one observation a line:
//	  EPOCH NODE[/PROC] MESSAGE
//	                      MESSAGE is the JSON of an SDK message, or a
//	                      shorthand: KIND COND TEXT (an evaluation, COND
//	                      true or false, TEXT the rest of the line) or
//	                      declare KIND TEXT (hit false). VirtualNS is
//	                      EPOCH × 1 ms.
//
// The output is each rejected observation, the verdicts and the warnings.
// Run with -rewrite to regenerate the expected output.
func TestAggregator(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			if d.Cmd != "observe" {
				d.Fatalf(t, "unknown command %s", d.Cmd)
			}
			var a Aggregator
			var b strings.Builder
			for i, line := range strings.Split(strings.TrimSpace(d.Input), "\n") {
				if line == "" {
					continue
				}
				o := parseObs(t, d, line)
				if err := a.Observe(o); err != nil {
					fmt.Fprintf(&b, "line %d: error: %v\n", i+1, err)
				}
			}
			// The state survives a snapshot: verdicts from a restored
			// Aggregator are the same.
			enc, err := json.Marshal(&a)
			if err != nil {
				t.Fatal(err)
			}
			var back Aggregator
			if err := json.Unmarshal(enc, &back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back.Verdicts(), a.Verdicts()) {
				t.Errorf("restored aggregator differs: %s", enc)
			}
			for _, v := range a.Verdicts() {
				fmt.Fprintf(&b, "%-7s %-21s %q hits=%d true=%d: %s\n", v.Status, v.Kind, v.Property, v.Hits, v.True, v.Message)
				if f := v.FirstFailure; f != nil {
					fmt.Fprintf(&b, "  first failure: epoch %d (%d ns) %s/%s: %s\n", f.Epoch, f.VirtualNS, f.Node, f.Proc, f.Message)
				}
			}
			for _, w := range a.Warnings() {
				fmt.Fprintf(&b, "warning: %s\n", w)
			}
			if b.Len() == 0 {
				return "no properties\n"
			}
			return b.String()
		})
	})
}

func parseObs(t *testing.T, d *datadriven.TestData, line string) Obs {
	f := strings.SplitN(line, " ", 3)
	if len(f) != 3 {
		d.Fatalf(t, "bad line %q", line)
	}
	epoch, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil {
		d.Fatalf(t, "bad epoch in %q", line)
	}
	node, proc, _ := strings.Cut(f[1], "/")
	msg := f[2]
	if !strings.HasPrefix(msg, "{") {
		w := strings.SplitN(msg, " ", 3)
		if len(w) != 3 {
			d.Fatalf(t, "bad shorthand %q", msg)
		}
		text, _ := json.Marshal(w[2])
		if w[0] == "declare" {
			msg = fmt.Sprintf(`{"type":"assert","assert":%q,"message":%s,"hit":false}`, w[1], text)
		} else {
			msg = fmt.Sprintf(`{"type":"assert","assert":%q,"message":%s,"condition":%s}`, w[0], text, w[1])
		}
	}
	return Obs{Epoch: epoch, VirtualNS: epoch * 1e6, Node: node, Proc: proc, Msg: json.RawMessage(msg)}
}

func TestMarshalDeterministic(t *testing.T) {
	var a, b Aggregator
	msgs := []string{"always true a", "sometimes false b", "reachable true c", "unreachable true d"}
	for i := range msgs {
		for j, x := range []*Aggregator{&a, &b} {
			m := msgs[i]
			if j == 1 {
				m = msgs[len(msgs)-1-i] // another order
			}
			w := strings.SplitN(m, " ", 3)
			raw := fmt.Sprintf(`{"type":"assert","assert":%q,"message":%q,"condition":%s}`, w[0], w[2], w[1])
			if err := x.Observe(Obs{Node: "n", Msg: json.RawMessage(raw)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	ea, _ := json.Marshal(&a)
	eb, _ := json.Marshal(&b)
	if string(ea) != string(eb) {
		t.Errorf("same state, different bytes:\n%s\n%s", ea, eb)
	}
}
