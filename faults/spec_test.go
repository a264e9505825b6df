package faults

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// errorCases are specs that ParseSpec or Compile (for testTopo, 1ms epochs,
// 10s) refuse, with the exact message.
var errorCases = []struct{ spec, want string }{
	{"- kind: kill\n  at: 1s\n- kind: loss\n  at: 2s\n  nodes: [n1]\n  percent: 150\n  jitter: 1ms\n",
		"test.yaml:6: faults[1].percent: 150 is over 100; use a number above 0 and at most 100, like percent: 20"},
	{"- kind: loss\n  at: 2s\n  nodes: [n1]\n  percent: 150\n- kind: kill\n  at: x\n",
		"test.yaml:4: faults[0].percent: 150 is over 100; use a number above 0 and at most 100, like percent: 20"},
	{"policy:\n  window: 1s\n  rates:\n    partition: 0.1\n    kil: 2\n",
		"test.yaml:5: faults.policy.rates.kil: \"kil\" is not a fault kind; did you mean \"kill\"? (use one of partition, loss, delay, duplicate, reorder, corrupt, clog, kill, pause, throttle, freeze, power-cut, vm-freeze, clock-jump, clock-strobe, clock-skew)"},
	{"- &base {kind: kill, at: 1s, nodes: [n1]}\n- {<<: *base, at: 2s, nodes: [n9]}\n",
		"test.yaml:2: faults[1].nodes[0]: \"n9\" is not a node; use one of n1, n2, n3, n4, n5, sidecar"},
	{"- {kind: partiton, at: 1s}",
		"test.yaml:1: faults[0].kind: \"partiton\" is not a fault kind; did you mean \"partition\"? (use one of partition, loss, delay, duplicate, reorder, corrupt, clog, kill, pause, throttle, freeze, power-cut, vm-freeze, clock-jump, clock-strobe, clock-skew)"},
	{"- {kind: explode, at: 1s}",
		"test.yaml:1: faults[0].kind: \"explode\" is not a fault kind; use one of partition, loss, delay, duplicate, reorder, corrupt, clog, kill, pause, throttle, freeze, power-cut, vm-freeze, clock-jump, clock-strobe, clock-skew"},
	{"- {at: 1s, nodes: [n1]}",
		"test.yaml:1: faults[0].kind: required field is missing; add what the fault does, like kind: partition (kinds: partition, loss, delay, duplicate, reorder, corrupt, clog, kill, pause, throttle, freeze, power-cut, vm-freeze, clock-jump, clock-strobe, clock-skew)"},
	{"- {kind: kill}",
		"test.yaml:1: faults[0].at: required field is missing; add when the fault starts, in virtual time, like at: 2s"},
	{"- {kind: kill, at: 2 sec}",
		"test.yaml:1: faults[0].at: \"2 sec\" is not a duration; use Go duration syntax like 2s or 1500ms"},
	{"- {kind: kill, at: 2}",
		"test.yaml:1: faults[0].at: 2 has no unit; use Go duration syntax like 2s or 1500ms"},
	{"- {kind: kill, at: -1s}",
		"test.yaml:1: faults[0].at: -1s is negative; use a time of 0 or more, like 2s"},
	{"- {kind: kill, at: 1s, for: 0s}",
		"test.yaml:1: faults[0].for: 0s is zero; use a duration above 0 like 3s, or leave for out to last until the end of the run"},
	{"- {kind: kill, at: 11s}",
		"test.yaml:1: faults[0].at: 11s is past the end of the run (duration 10s); use a time before 10s, or make the run longer"},
	{"- {kind: kill, at: 10s}",
		"test.yaml:1: faults[0].at: 10s is the end of the run: the fault would never act; use a time before 10s, or make the run longer"},
	{"- {kind: kill, at: 1s, nodes: [n9]}",
		"test.yaml:1: faults[0].nodes[0]: \"n9\" is not a node; use one of n1, n2, n3, n4, n5, sidecar"},
	{"- {kind: kill, at: 1s, nodes: [n11]}",
		"test.yaml:1: faults[0].nodes[0]: \"n11\" is not a node; did you mean \"n1\"? (use one of n1, n2, n3, n4, n5, sidecar)"},
	{"- {kind: kill, at: 1s, nodes: n1}",
		"test.yaml:1: faults[0].nodes: is a single value, not a list; write node names as a list, like nodes: [n1]"},
	{"- {kind: kill, at: 1s, nodes: []}",
		"test.yaml:1: faults[0].nodes: is empty; name at least one node, like nodes: [n1], or leave nodes out"},
	{"- {kind: kill, at: 1s, nodes: [n1, n1]}",
		"test.yaml:1: faults[0].nodes[1]: n1 is listed twice (first on line 1); list each node once"},
	{"- {kind: kill, at: 1s, percent: 5}",
		"test.yaml:1: faults[0].percent: does not apply to kill faults; remove it (allowed here: kind, at, for, nodes, proc)"},
	{"- {kind: kill, at: 1s, nodse: [n1]}",
		"test.yaml:1: faults[0].nodse: unknown field; did you mean \"nodes\"? (allowed: kind, at, for, nodes, proc)"},
	{"- {kind: kill, at: 1s, bogus: 1}",
		"test.yaml:1: faults[0].bogus: unknown field; remove it or fix its spelling (allowed: kind, at, for, nodes, proc)"},
	{"- {kind: kill, at: 1s, proc: \"\"}",
		"test.yaml:1: faults[0].proc: is empty; give the name of a process on the node, like proc: etcd, or leave proc out for the node's main program"},
	{"- {kind: loss, at: 1s, percent: 20}",
		"test.yaml:1: faults[0].nodes: required field is missing; a loss fault needs the nodes whose links it acts on, like nodes: [n1]"},
	{"- {kind: loss, at: 1s, nodes: [n1]}",
		"test.yaml:1: faults[0].percent: required field is missing; a loss fault needs percent, like percent: 20"},
	{"- {kind: loss, at: 1s, nodes: [n1], percent: -5}",
		"test.yaml:1: faults[0].percent: -5 is negative; use a number above 0 and at most 100, like percent: 20"},
	{"- {kind: loss, at: 1s, nodes: [n1], percent: 120}",
		"test.yaml:1: faults[0].percent: 120 is over 100; use a number above 0 and at most 100, like percent: 20"},
	{"- {kind: loss, at: 1s, nodes: [n1], percent: 0}",
		"test.yaml:1: faults[0].percent: 0 would affect no frame; use a number above 0 and at most 100, like percent: 20"},
	{"- {kind: loss, at: 1s, nodes: [n1], percent: 20%}",
		"test.yaml:1: faults[0].percent: \"20%\" is not a number; write the number without %, like percent: 20"},
	{"- {kind: loss, at: 1s, nodes: [n1], percent: lots}",
		"test.yaml:1: faults[0].percent: \"lots\" is not a number; use a number above 0 and at most 100, like percent: 20"},
	{"- {kind: loss, at: 1s, nodes: [n1], to: [n1, n2], percent: 5}",
		"test.yaml:1: faults[0].to[0]: n1 is also in nodes (line 1); a link joins two different nodes; remove it from one of the lists"},
	{"- {kind: loss, at: 1s, nodes: [n1], to: [n7], percent: 5}",
		"test.yaml:1: faults[0].to[0]: \"n7\" is not a node; use one of n1, n2, n3, n4, n5, sidecar"},
	{"- {kind: loss, at: 1s, nodes: [n1], percent: 5, oneway: yes}",
		"test.yaml:1: faults[0].oneway: \"yes\" is not true or false; write oneway: true or oneway: false"},
	{"- {kind: clog, at: 1s, nodes: [n1], rate: -100}",
		"test.yaml:1: faults[0].rate: -100 is negative; write bytes per second as a whole number above 0, like rate: 102400"},
	{"- {kind: clog, at: 1s, nodes: [n1], rate: 0}",
		"test.yaml:1: faults[0].rate: 0 would stop all traffic (use a partition for that); write bytes per second as a whole number above 0, like rate: 102400"},
	{"- {kind: clog, at: 1s, nodes: [n1], rate: 100KB/s}",
		"test.yaml:1: faults[0].rate: \"100KB/s\" is not a whole number; write bytes per second as a whole number above 0, like rate: 102400"},
	{"- {kind: delay, at: 1s, nodes: [n1], delay: 0s}",
		"test.yaml:1: faults[0].delay: 0s is zero; use a duration above 0, like 50ms"},
	{"- {kind: delay, at: 1s, nodes: [n1], delay: 10ms, jitter: -1ms}",
		"test.yaml:1: faults[0].jitter: -1ms is negative; use a duration of 0 or more, like 10ms"},
	{"- {kind: throttle, at: 1s, ratio: 1.5}",
		"test.yaml:1: faults[0].ratio: 1.5 is out of range; use a share of one CPU above 0 and at most 1, like ratio: 0.25"},
	{"- {kind: throttle, at: 1s, ratio: 0}",
		"test.yaml:1: faults[0].ratio: 0 is out of range; use a share of one CPU above 0 and at most 1, like ratio: 0.25"},
	{"- {kind: throttle, at: 1s}",
		"test.yaml:1: faults[0].ratio: required field is missing; a throttle fault needs ratio, like ratio: 0.25"},
	{"- {kind: clock-jump, at: 1s, offset: 0s}",
		"test.yaml:1: faults[0].offset: 0s is zero; use a signed duration other than 0, like -30s or 5m"},
	{"- {kind: clock-strobe, at: 1s, offset: -1s, period: 10ms}",
		"test.yaml:1: faults[0].offset: -1s is negative; use the amplitude of the steps, a duration above 0 like 200ms"},
	{"- {kind: clock-strobe, at: 1s, offset: 1s, period: 100us}",
		"test.yaml:1: faults[0].period: 100µs is shorter than an epoch (1ms); use 1ms or more"},
	{"- {kind: clock-strobe, at: 1s, offset: 1s}",
		"test.yaml:1: faults[0].period: required field is missing; a clock-strobe fault needs period, like offset: 200ms, period: 50ms"},
	{"- {kind: clock-skew, at: 1s, ppm: 600}",
		"test.yaml:1: faults[0].ppm: 600 is out of range; use a whole number from -500 to 500 other than 0, like ppm: 200"},
	{"- {kind: clock-skew, at: 1s, ppm: 0}",
		"test.yaml:1: faults[0].ppm: 0 is out of range; use a whole number from -500 to 500 other than 0, like ppm: 200"},
	{"- {kind: clock-skew, at: 1s, ppm: 1.5}",
		"test.yaml:1: faults[0].ppm: \"1.5\" is not a whole number; use a whole number from -500 to 500 other than 0, like ppm: 200"},
	{"- {kind: partition, at: 1s}",
		"test.yaml:1: faults[0].groups: required field is missing; a partition needs groups, like groups: [[n1], [n2, n3]], or mode: isolate, halves, majority, majorities-ring, bridge"},
	{"- {kind: partition, at: 1s, groups: [[n1], [n2]], mode: halves}",
		"test.yaml:1: faults[0].mode: is given together with groups; give either groups (who is cut off from whom) or mode (a shape drawn at random), not both"},
	{"- {kind: partition, at: 1s, groups: [[n1, n2]]}",
		"test.yaml:1: faults[0].groups: has 1 group; a partition needs two groups or more: list the other side too, like groups: [[n1], [n2, n3]], or use mode: isolate"},
	{"- {kind: partition, at: 1s, groups: [[n1, n2], [n2, n3]]}",
		"test.yaml:1: faults[0].groups[1][0]: n2 is already in faults[0].groups[0]; groups must not overlap; to join two sides through one node use mode: bridge"},
	{"- {kind: partition, at: 1s, groups: [[n1], []]}",
		"test.yaml:1: faults[0].groups[1]: is empty; name the group's nodes, or remove the group"},
	{"- {kind: partition, at: 1s, groups: [n1, n2]}",
		"test.yaml:1: faults[0].groups[0]: is a single value, not a list; write each group as a list of names, like groups: [[n1], [n2, n3]]"},
	{"- {kind: partition, at: 1s, mode: split}",
		"test.yaml:1: faults[0].mode: \"split\" is not a partition mode; use one of isolate, halves, majority, majorities-ring, bridge"},
	{"- {kind: partition, at: 1s, nodes: [n1], mode: isolate}",
		"test.yaml:1: faults[0].nodes: does not apply to partition faults; remove it (allowed here: kind, at, for, groups, mode, oneway)"},
	{"- {kind: partition, at: 1s, groups: [[n1], [n2]], percent: 4}",
		"test.yaml:1: faults[0].percent: does not apply to partition faults; remove it (allowed here: kind, at, for, groups, mode, oneway)"},
	{"- kill",
		"test.yaml:1: faults[0]: is a single value, not a mapping; write each fault as a mapping, like \"- kind: partition\" with its fields under kind"},
	{"- {kind: kill, at: 1s, at: 2s}",
		"test.yaml:1: faults[0].at: is set twice (first on line 1); remove one of the two"},
	{"something",
		"test.yaml:1: faults: \"something\" is not a fault spec; write a list of faults (- kind: partition ...), a mapping with \"policy: random\", or random or none"},
	{"42",
		"test.yaml:1: faults: \"42\" is not a fault spec; write a list of faults (- kind: partition ...), a mapping with \"policy: random\", or random or none"},
	{"policy: sometimes",
		"test.yaml:1: faults.policy: \"sometimes\" is not a built-in policy; use policy: random, policy: none, or a mapping of settings like {window: 1s, rates: {partition: 0.2}}"},
	{"{kind: kill, at: 1s}",
		"test.yaml:1: faults.kind: is a field of one fault, not of a policy mapping; write the faults as a list, each starting with \"- \", like \"- {kind: kill, at: 2s}\""},
	{"{polcy: random}",
		"test.yaml:1: faults.polcy: unknown field; did you mean \"policy\"? (allowed: policy)"},
	{"policy: {window: 0s}",
		"test.yaml:1: faults.policy.window: 0s is zero; use a duration above 0, like 1s"},
	{"policy: {window: 100us}",
		"test.yaml:1: faults.policy.window: 100µs is shorter than an epoch (1ms); use 1ms or more"},
	{"policy: {max_concurrent: 0}",
		"test.yaml:1: faults.policy.max_concurrent: 0 is out of range; use a whole number of 1 or more, like max_concurrent: 2"},
	{"policy: {max_concurrent: two}",
		"test.yaml:1: faults.policy.max_concurrent: \"two\" is not a whole number; use a whole number of 1 or more, like max_concurrent: 2"},
	{"policy: {quiet: -1s}",
		"test.yaml:1: faults.policy.quiet: -1s is negative; use a duration of 0 or more, like 1s"},
	{"policy: {min: 2s, max: 1s}",
		"test.yaml:1: faults.policy.max: 1s is shorter than min (2s); use a duration of 2s or more, or lower min"},
	{"policy: {rates: {partition: -1}}",
		"test.yaml:1: faults.policy.rates.partition: -1 is negative; use expected new faults per virtual second, from 0 to 1000, like 0.2"},
	{"policy: {rates: {partition: 2000}}",
		"test.yaml:1: faults.policy.rates.partition: 2000 is over 1000; use expected new faults per virtual second, from 0 to 1000, like 0.2"},
	{"policy: {rates: {partion: 1}}",
		"test.yaml:1: faults.policy.rates.partion: \"partion\" is not a fault kind; did you mean \"partition\"? (use one of partition, loss, delay, duplicate, reorder, corrupt, clog, kill, pause, throttle, freeze, power-cut, vm-freeze, clock-jump, clock-strobe, clock-skew)"},
	{"policy: {rates: [partition]}",
		"test.yaml:1: faults.policy.rates: is a list, not a mapping; write kind: rate pairs, like rates: {partition: 0.2, kill: 0.1}"},
	{"policy: {params: {delay: {percent: 5}}}",
		"test.yaml:1: faults.policy.params.delay.percent: does not apply to delay faults; remove it (allowed here: oneway, delay, jitter)"},
	{"policy: {params: {loss: {nodes: [n1]}}}",
		"test.yaml:1: faults.policy.params.loss.nodes: is drawn at random for every fault; it cannot be fixed here; remove it (allowed here: oneway, percent)"},
	{"policy: {params: {clock-strobe: {period: 10us}}}",
		"test.yaml:1: faults.policy.params.clock-strobe.period: 10µs is shorter than an epoch (1ms); use 1ms or more"},
	{"policy: {window: 1s, maxconcurrent: 2}",
		"test.yaml:1: faults.policy.maxconcurrent: unknown field; did you mean \"max_concurrent\"? (allowed: window, max_concurrent, quiet, final_heal, min, max, rates, params)"},
}

func TestErrors(t *testing.T) {
	for _, c := range errorCases {
		s, err := parseString(c.spec)
		if err == nil {
			_, err = s.Compile(testTopo, time.Millisecond, 10*time.Second, []Segment{{Seed: 1}})
		}
		if err == nil {
			t.Errorf("%q: no error, want %s", c.spec, c.want)
			continue
		}
		var fe *Error
		if !errors.As(err, &fe) {
			t.Errorf("%q: %T is not *Error", c.spec, err)
		}
		if err.Error() != c.want {
			t.Errorf("%q:\n got %s\nwant %s", c.spec, err, c.want)
		}
	}
}

// TestCompileErrors are problems only the topology reveals.
func TestCompileErrors(t *testing.T) {
	for _, c := range []struct {
		topo       Topology
		spec, want string
	}{
		{Topology{Names: []string{"a", "b", "sidecar"}, Sidecar: 2}, "- {kind: partition, at: 1s, mode: bridge}",
			"test.yaml:1: faults[0].mode: bridge needs at least 3 nodes besides the sidecar; the run has 2; add nodes to the scenario or use another mode"},
		{Topology{Names: []string{"a", "b", "c"}, Sidecar: -1}, "- {kind: partition, at: 1s, mode: majorities-ring}",
			"test.yaml:1: faults[0].mode: majorities-ring needs at least 4 nodes besides the sidecar; the run has 3; add nodes to the scenario or use another mode"},
		{Topology{Names: []string{"a", "b", "c"}, Sidecar: -1}, "policy: {rates: {partition: 1}, params: {partition: {mode: majorities-ring}}}",
			"test.yaml:1: faults.policy.params.partition.mode: majorities-ring needs at least 4 nodes besides the sidecar; the run has 3; add nodes to the scenario or use another mode"},
		{Topology{Names: []string{"sidecar"}, Sidecar: 0}, "- {kind: kill, at: 1s}",
			"test.yaml:1: faults[0].nodes: there is no node to pick at random: every guest is the sidecar; name the nodes, like nodes: [sidecar]"},
	} {
		s, err := parseString(c.spec)
		if err != nil {
			t.Fatalf("%q: %v", c.spec, err)
		}
		_, err = s.Compile(c.topo, time.Millisecond, 10*time.Second, []Segment{{Seed: 1}})
		if err == nil || err.Error() != c.want {
			t.Errorf("%q:\n got %v\nwant %s", c.spec, err, c.want)
		}
	}
}

func TestCompileArgs(t *testing.T) {
	s, _ := Builtin("random")
	for _, c := range []struct {
		topo  Topology
		epoch time.Duration
		segs  []Segment
		want  string
	}{
		{testTopo, 0, []Segment{{Seed: 1}}, "faults: compile: epoch (0s) and duration (10s) must be positive"},
		{testTopo, time.Millisecond, nil, "faults: compile: the first segment must start at epoch 0"},
		{testTopo, time.Millisecond, []Segment{{Seed: 1, FromEpoch: 5}}, "faults: compile: the first segment must start at epoch 0"},
		{testTopo, time.Millisecond, []Segment{{Seed: 1}, {Seed: 2, FromEpoch: 5}, {Seed: 3, FromEpoch: 5}}, "faults: compile: segment 2 starts at epoch 5, not after 5"},
		{Topology{Names: []string{"a", "a"}, Sidecar: -1}, time.Millisecond, []Segment{{Seed: 1}}, `faults: topology: node name "a" appears twice`},
		{Topology{Names: []string{"a"}, Sidecar: 1}, time.Millisecond, []Segment{{Seed: 1}}, "faults: topology: sidecar index 1 is out of range for 1 nodes"},
	} {
		_, err := s.Compile(c.topo, c.epoch, 10*time.Second, c.segs)
		if err == nil || err.Error() != c.want {
			t.Errorf("got %v, want %s", err, c.want)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good := write("good.yaml", "# two faults\n- {kind: kill, at: 1s, for: 1s, nodes: [n1]}\n- {kind: loss, at: 2s, nodes: [n2], percent: 10}\n")
	s, err := Load(good)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.String(), "2 faults ("+good+")"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	sched := mustCompile(t, s, testTopo, time.Millisecond, 5*time.Second, Segment{Seed: 1})
	if got, want := printFaults(sched), "#0 kill nodes=[0] epochs=[1000,2000)\n#1 loss nodes=[1] percent=10 epochs=[2000,5001)\n"; got != want {
		t.Errorf("schedule:\n%s\nwant\n%s", got, want)
	}
	pol, err := Load(write("policy.yaml", "policy:\n  rates: {kill: 1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := pol.String(); !strings.HasPrefix(got, "policy (") || !strings.HasSuffix(got, "policy.yaml:2)") {
		t.Errorf("String() = %q", got)
	}
	for _, c := range []struct{ path, want string }{
		{filepath.Join(dir, "missing.yaml"), dir + "/missing.yaml: cannot read the faults file: no such file or directory; check the path"},
		{write("empty.yaml", "# nothing\n"), dir + "/empty.yaml:1: the file is empty; write a list of faults (- kind: partition ...), policy: random, or use --faults none"},
		{write("syntax.yaml", "- {kind: kill, at: 1s\n- {kind: pause}\n"), dir + "/syntax.yaml:1: yaml syntax: did not find expected ',' or '}'; check the brackets, quotes and indentation from this line on"},
		{write("two.yaml", "- {kind: kill, at: 1s}\n---\n- {kind: kill, at: 2s}\n"), dir + `/two.yaml:2: a second YAML document starts here (after "---"); keep one fault spec per file`},
		{write("scenario.yaml", "faults:\n  - {kind: kill, at: 1s}\n"), dir + "/scenario.yaml:1: faults.faults: is the scenario's key; a faults file holds only what it would hold; remove the faults: line and unindent what is under it"},
		{write("bad.yaml", "- kind: kill\n  at: 1s\n  ratio: 2\n"), dir + "/bad.yaml:3: faults[0].ratio: does not apply to kill faults; remove it (allowed here: kind, at, for, nodes, proc)"},
	} {
		_, err := Load(c.path)
		if err == nil || err.Error() != c.want {
			t.Errorf("Load(%s):\n got %v\nwant %s", filepath.Base(c.path), err, c.want)
		}
	}
}

// TestParseSpecNode: the value node of a faults: key, as the scenario
// parser passes it, with its lines.
func TestParseSpecNode(t *testing.T) {
	var doc yaml.Node
	text := "name: x\nfaults:\n  - kind: kill\n    at: 1s\n    nodes: [n1, nx]\n"
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatal(err)
	}
	value := doc.Content[0].Content[3]
	s, err := ParseSpec(value, "run.yaml", "faults")
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Compile(testTopo, time.Millisecond, 10*time.Second, []Segment{{Seed: 1}})
	if want := `run.yaml:5: faults[0].nodes[1]: "nx" is not a node; use one of n1, n2, n3, n4, n5, sidecar`; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	if s, err := ParseSpec(nil, "run.yaml", "faults"); err != nil || s.String() != "none" {
		t.Errorf("ParseSpec(nil) = %v, %v", s, err)
	}
}

func TestKinds(t *testing.T) {
	var b strings.Builder
	for _, k := range Kinds() {
		b.WriteString(string(k) + ":" + k.Class() + " ")
	}
	want := "partition:network loss:network delay:network duplicate:network reorder:network corrupt:network clog:network " +
		"kill:process pause:process throttle:process freeze:process power-cut:node vm-freeze:node " +
		"clock-jump:clock clock-strobe:clock clock-skew:clock "
	if b.String() != want {
		t.Errorf("Kinds:\n got %s\nwant %s", b.String(), want)
	}
	if len(Kinds()) != numKinds || Kind("boom").Class() != "" {
		t.Error("Kinds or Class is off")
	}
	Kinds()[0] = "changed"
	if Kinds()[0] != Partition {
		t.Error("Kinds returns the package's own slice")
	}
	for _, name := range []string{"random", "none"} {
		if s, ok := Builtin(name); !ok || s.String() != name {
			t.Errorf("Builtin(%s) = %v, %v", name, s, ok)
		}
	}
	if _, ok := Builtin("chaos"); ok {
		t.Error("Builtin(chaos) exists")
	}
}
