package faults

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/detvm/detvm/internal/yamlwalk"
)

// Spec is what a scenario's faults: key or a --faults file holds, parsed but
// not compiled: node names are still names, random choices are not made. It
// is either a list of hand-written faults or a policy that draws faults at
// random; see the package documentation for both forms. Compile turns it
// into a Schedule for one topology, run length and seed.
type Spec struct {
	file, field string
	name        string // "random" or "none" for a built-in spec
	list        []*handFault
	policy      *policy
	src         []byte // the file's bytes, when read by Load or Parse
}

// String describes the spec for logs: "none", "random", "policy (x.yaml:3)"
// or "3 faults (x.yaml)".
func (s *Spec) String() string {
	switch {
	case s.name != "":
		return s.name
	case s.policy != nil:
		return fmt.Sprintf("policy (%s:%d)", s.file, s.policy.line)
	case len(s.list) == 1:
		return fmt.Sprintf("1 fault (%s)", s.file)
	}
	return fmt.Sprintf("%d faults (%s)", len(s.list), s.file)
}

// nameRef is a node name as written, with where it was written.
type nameRef struct {
	name  string
	line  int
	field string
}

// params are the settings a hand-written fault or a policy's per-kind
// defaults give. set holds, for each key given, the line of its value.
type params struct {
	set     map[string]int
	field   string // path of the mapping, for errors found by Compile
	mode    string
	oneway  bool
	proc    string
	percent float64
	delay   time.Duration
	jitter  time.Duration
	rate    int64
	ratio   float64
	offset  time.Duration
	period  time.Duration
	ppm     int64
}

func (ps *params) has(key string) bool { _, ok := ps.set[key]; return ok }

// handFault is one fault of a hand-written list.
type handFault struct {
	index  int
	field  string
	line   int
	kind   Kind
	at     time.Duration
	atLine int
	length time.Duration // 0: until the end of the run
	nodes  []nameRef     // nil: one random node (not for link faults)
	to     []nameRef
	groups [][]nameRef
	params
}

// policy draws faults at random; see the package documentation.
type policy struct {
	line, windowLine int
	field            string
	window           time.Duration
	maxConcurrent    int
	quiet, finalHeal time.Duration
	min, max         time.Duration
	rates            [numKinds]uint64 // expected new faults per second, in billionths
	params           [numKinds]*params
}

const numKinds = 16

// Partition modes.
const (
	ModeIsolate        = "isolate"
	ModeHalves         = "halves"
	ModeMajority       = "majority"
	ModeMajoritiesRing = "majorities-ring"
	ModeBridge         = "bridge"
)

var modes = []string{ModeIsolate, ModeHalves, ModeMajority, ModeMajoritiesRing, ModeBridge}

// MaxRate bounds a policy's rate of one kind, in faults per virtual second.
const MaxRate = 1000

// Keys of a hand-written fault, in the order the hints list them.
var faultKeys = []string{"kind", "at", "for", "nodes", "to", "groups", "mode",
	"oneway", "proc", "percent", "delay", "jitter", "rate", "ratio", "offset", "period", "ppm"}

var policyKeys = []string{"window", "max_concurrent", "quiet", "final_heal", "min", "max", "rates", "params"}

// allowedKeys are the keys of a hand-written fault of kind k.
func allowedKeys(k Kind) []string {
	keys := []string{"kind", "at", "for"}
	keys = append(keys, k.targets()...)
	return append(keys, k.params()...)
}

// defaultKeys are the keys of a policy's defaults for kind k.
func defaultKeys(k Kind) []string {
	if k == Partition {
		return []string{"mode", "oneway"}
	}
	return k.params()
}

func kindList() string { return strings.Join(kindNames(), ", ") }

func kindNames() []string {
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = string(k)
	}
	return names
}

// Builtin returns a built-in spec by name:
//
//   - "none": no faults.
//   - "random": a policy drawing every kind of fault at moderate rates,
//     about 0.75 new faults per virtual second in all, in windows of 1s,
//     at most 2 at a time, each lasting 500ms to 3s, with 500ms of quiet
//     after each and none in the last 2s of the run. A policy mapping
//     starts from these settings.
func Builtin(name string) (*Spec, bool) {
	switch name {
	case "none":
		return &Spec{name: "none"}, true
	case "random":
		return &Spec{name: "random", policy: randomPolicy()}, true
	}
	return nil, false
}

func randomPolicy() *policy {
	p := &policy{
		window:        time.Second,
		maxConcurrent: 2,
		quiet:         500 * time.Millisecond,
		finalHeal:     2 * time.Second,
		min:           500 * time.Millisecond,
		max:           3 * time.Second,
	}
	// Faults per virtual second, in Kinds() order.
	rates := [numKinds]float64{
		0.1, 0.05, 0.1, 0.05, 0.05, 0.02, 0.05, // partition loss delay duplicate reorder corrupt clog
		0.05, 0.05, 0.05, 0.05, // kill pause throttle freeze
		0.02, 0.02, // power-cut vm-freeze
		0.03, 0.02, 0.03, // clock-jump clock-strobe clock-skew
	}
	for i, r := range rates {
		p.rates[i] = uint64(math.Round(r * 1e9))
	}
	return p
}

// Load reads a file whose whole content is what a scenario's faults: key
// holds. Its errors are *Error, with fields named faults[0].kind and so on.
func Load(path string) (*Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{File: path, Problem: "cannot read the faults file: " + unwrapPath(err), Hint: "check the path"}
	}
	return Parse(data, path)
}

// Parse reads a fault spec file's contents; path names it in errors. The
// spec keeps the bytes (Source), so that a replay bundle can carry them.
func Parse(data []byte, path string) (*Spec, error) {
	p := newParser(path)
	docs, err := yamlwalk.DecodeAll(data)
	if err != nil {
		p.syntax(err)
		return nil, p.first()
	}
	if len(docs) == 0 || yamlwalk.IsNull(docs[0].Content[0]) {
		return nil, &Error{File: path, Line: 1, Problem: "the file is empty",
			Hint: "write a list of faults (- kind: partition ...), policy: random, or use --faults none"}
	}
	for _, d := range docs[1:] {
		if len(d.Content) > 0 && !yamlwalk.IsNull(d.Content[0]) {
			return nil, &Error{File: path, Line: d.Line, Problem: `a second YAML document starts here (after "---")`, Hint: "keep one fault spec per file"}
		}
	}
	spec, err := ParseSpec(docs[0], path, "faults")
	if err != nil {
		return nil, err
	}
	spec.src = append([]byte(nil), data...)
	return spec, nil
}

// Source says where the spec came from: a built-in's name, or the
// contents of the file Load or Parse read. Both are empty for a spec read
// from a scenario's faults: key, which the scenario file itself carries.
func (s *Spec) Source() (builtin string, file []byte) {
	if s.src != nil {
		return "", s.src
	}
	return s.name, nil
}

func unwrapPath(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}

// ParseSpec reads a fault spec from n, the value of a faults: key (or a
// document holding one). field is the path of that key, like "faults", used
// to name fields in errors; file names the file. A nil or null n is the
// "none" spec. Errors are *Error; when there are several, the one on the
// earliest line is returned. Node names are checked by Compile, which knows
// the topology.
func ParseSpec(n *yaml.Node, file, field string) (*Spec, error) {
	p := newParser(file)
	s := p.spec(n, field)
	if err := p.first(); err != nil {
		return nil, err
	}
	s.file, s.field = file, field
	return s, nil
}

const specHint = `write a list of faults (- kind: partition ...), a mapping with "policy: random", or random or none`

func (p *parser) spec(n *yaml.Node, field string) *Spec {
	if n != nil && n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			n = nil
		} else {
			n = n.Content[0]
		}
	}
	if n == nil || n.Kind == 0 || yamlwalk.IsNull(n) {
		s, _ := Builtin("none")
		return s
	}
	d := yamlwalk.Deref(n)
	switch d.Kind {
	case yaml.ScalarNode:
		if s, ok := Builtin(d.Value); ok {
			return s
		}
		p.fail(n.Line, field, fmt.Sprintf("%q is not a fault spec", d.Value), specHint)
	case yaml.SequenceNode:
		s := &Spec{}
		for i, item := range d.Content {
			if f := p.handFault(item, fmt.Sprintf("%s[%d]", field, i), i); f != nil {
				s.list = append(s.list, f)
			}
		}
		return s
	case yaml.MappingNode:
		f := p.fields(d, field, []string{"policy"}, func(key string) (string, string) {
			switch {
			case slices.Contains(faultKeys, key):
				return "is a field of one fault, not of a policy mapping",
					`write the faults as a list, each starting with "- ", like "- {kind: kill, at: 2s}"`
			case key == "faults":
				return "is the scenario's key; a faults file holds only what it would hold",
					"remove the faults: line and unindent what is under it"
			}
			return "", ""
		})
		v := f.Req("policy", `add "policy: random", or write the faults as a list (- kind: partition ...)`)
		if v == nil {
			return &Spec{}
		}
		return p.policy(v, yamlwalk.Join(field, "policy"))
	default:
		p.fail(n.Line, field, "is "+yamlwalk.KindName(d), specHint)
	}
	return &Spec{}
}

func (p *parser) policy(v *yaml.Node, field string) *Spec {
	d := yamlwalk.Deref(v)
	if d.Kind == yaml.ScalarNode {
		if s, ok := Builtin(d.Value); ok {
			return s
		}
		p.fail(v.Line, field, fmt.Sprintf("%q is not a built-in policy", d.Value),
			"use policy: random, policy: none, or a mapping of settings like {window: 1s, rates: {partition: 0.2}}")
		return &Spec{}
	}
	if p.Mapping(v, field, "use policy: random or a mapping of settings like {window: 1s, rates: {partition: 0.2}}") == nil {
		return &Spec{}
	}
	pol := randomPolicy()
	pol.line, pol.field = v.Line, field
	f := p.fields(d, field, policyKeys, nil)
	const lengthHint = "use a duration above 0, like 500ms"
	if v := f.Opt("window"); v != nil {
		pol.windowLine = v.Line
		if x, ok := p.duration(v, yamlwalk.Join(field, "window"), "use a duration above 0, like 1s", 1); ok {
			pol.window = x
		}
	}
	if v := f.Opt("max_concurrent"); v != nil {
		const hint = "use a whole number of 1 or more, like max_concurrent: 2"
		if x, text, ok := p.integer(v, yamlwalk.Join(field, "max_concurrent"), hint); ok {
			if x < 1 || x > math.MaxInt32 {
				p.fail(v.Line, yamlwalk.Join(field, "max_concurrent"), fmt.Sprintf("%s is out of range", text), hint)
			} else {
				pol.maxConcurrent = int(x)
			}
		}
	}
	if v := f.Opt("quiet"); v != nil {
		if x, ok := p.duration(v, yamlwalk.Join(field, "quiet"), "use a duration of 0 or more, like 1s", 0); ok {
			pol.quiet = x
		}
	}
	if v := f.Opt("final_heal"); v != nil {
		if x, ok := p.duration(v, yamlwalk.Join(field, "final_heal"), "use a duration of 0 or more, like 3s", 0); ok {
			pol.finalHeal = x
		}
	}
	minOK := true
	if v := f.Opt("min"); v != nil {
		pol.min, minOK = p.duration(v, yamlwalk.Join(field, "min"), lengthHint, 1)
	}
	if v := f.Opt("max"); v != nil {
		if x, ok := p.duration(v, yamlwalk.Join(field, "max"), "use a duration above 0, like 3s", 1); ok {
			if minOK && x < pol.min {
				p.fail(v.Line, yamlwalk.Join(field, "max"), fmt.Sprintf("%v is shorter than min (%v)", x, pol.min), fmt.Sprintf("use a duration of %v or more, or lower min", pol.min))
			} else {
				pol.max = x
			}
		}
	} else if minOK && pol.min > pol.max {
		pol.max = pol.min
	}
	if v := f.Opt("rates"); v != nil {
		p.rates(v, yamlwalk.Join(field, "rates"), pol)
	}
	if v := f.Opt("params"); v != nil {
		p.defaults(v, yamlwalk.Join(field, "params"), pol)
	}
	return &Spec{policy: pol}
}

// rates reads the mapping of kind to rate. Kinds it leaves out get rate 0.
func (p *parser) rates(v *yaml.Node, field string, pol *policy) {
	d := p.Mapping(v, field, "write kind: rate pairs, like rates: {partition: 0.2, kill: 0.1}")
	if d == nil {
		return
	}
	pol.rates = [numKinds]uint64{}
	const hint = "use expected new faults per virtual second, from 0 to 1000, like 0.2"
	for _, e := range p.Entries(d, field) {
		k := Kind(e.Name)
		if !k.valid() {
			p.fail(e.Key.Line, yamlwalk.Join(field, e.Name), fmt.Sprintf("%q is not a fault kind", e.Name), didYouMean("use one of "+kindList(), e.Name, kindNames()))
			continue
		}
		f := yamlwalk.Join(field, e.Name)
		x, text, ok := p.number(e.Val, f, e.Name, hint)
		switch {
		case !ok:
		case x < 0:
			p.fail(e.Val.Line, f, fmt.Sprintf("%s is negative", text), hint)
		case x > MaxRate:
			p.fail(e.Val.Line, f, fmt.Sprintf("%s is over %d", text, MaxRate), hint)
		default:
			pol.rates[k.index()] = uint64(math.Round(x * 1e9))
		}
	}
}

// defaults reads the per-kind settings that replace random draws.
func (p *parser) defaults(v *yaml.Node, field string, pol *policy) {
	d := p.Mapping(v, field, "write kind: {settings} pairs, like params: {delay: {delay: 50ms}}")
	if d == nil {
		return
	}
	for _, e := range p.Entries(d, field) {
		k := Kind(e.Name)
		f := yamlwalk.Join(field, e.Name)
		if !k.valid() {
			p.fail(e.Key.Line, f, fmt.Sprintf("%q is not a fault kind", e.Name), didYouMean("use one of "+kindList(), e.Name, kindNames()))
			continue
		}
		keys := defaultKeys(k)
		m := p.Mapping(e.Val, f, fmt.Sprintf("write the settings as a mapping, like %s: {%s}", k, example(k)))
		if m == nil {
			continue
		}
		fs := p.fields(m, f, keys, func(key string) (string, string) {
			switch {
			case slices.Contains(allowedKeys(k), key):
				return "is drawn at random for every fault; it cannot be fixed here", ""
			case slices.Contains(faultKeys, key):
				return fmt.Sprintf("does not apply to %s faults", k), ""
			}
			return "", ""
		})
		ps := &params{set: map[string]int{}, field: f}
		for _, key := range keys {
			if v := fs.Opt(key); v != nil {
				p.param(key, v, yamlwalk.Join(f, key), k, ps)
			}
		}
		pol.params[k.index()] = ps
	}
}

// example is a hint's example of the settings of kind k.
func example(k Kind) string {
	switch k {
	case Partition:
		return "mode: isolate"
	case Loss, Duplicate, Corrupt:
		return "percent: 20"
	case Reorder:
		return "percent: 20, delay: 10ms"
	case Delay:
		return "delay: 50ms, jitter: 10ms"
	case Clog:
		return "rate: 102400"
	case Throttle:
		return "ratio: 0.25"
	case ClockJump:
		return "offset: -30s"
	case ClockStrobe:
		return "offset: 200ms, period: 50ms"
	case ClockSkew:
		return "ppm: 200"
	}
	return "proc: etcd"
}

func (p *parser) handFault(item *yaml.Node, field string, index int) *handFault {
	d := p.Mapping(item, field, `write each fault as a mapping, like "- kind: partition" with its fields under kind`)
	if d == nil {
		return nil
	}
	f := &handFault{index: index, field: field, line: item.Line}
	f.set = map[string]int{}
	f.params.field = field
	// The kind decides which keys apply, so it is read first, by a walker
	// that records nothing: the walk that reports problems comes after.
	var kindNode *yaml.Node
	var quiet yamlwalk.Walker
	for _, e := range quiet.Entries(d, "") {
		if e.Name == "kind" {
			kindNode = e.Val
		}
	}
	allowed := faultKeys
	if kindNode != nil && !yamlwalk.IsNull(kindNode) {
		if dk := yamlwalk.Deref(kindNode); dk.Kind == yaml.ScalarNode && Kind(dk.Value).valid() {
			f.kind = Kind(dk.Value)
			allowed = allowedKeys(f.kind)
		}
	}
	fs := p.fields(d, field, allowed, func(key string) (string, string) {
		if slices.Contains(faultKeys, key) {
			return fmt.Sprintf("does not apply to %s faults", f.kind), ""
		}
		return "", ""
	})
	if v := fs.Req("kind", "add what the fault does, like kind: partition (kinds: "+kindList()+")"); v != nil {
		if text, ok := p.Scalar(v, yamlwalk.Join(field, "kind"), "a kind", "use one of "+kindList()); ok && !Kind(text).valid() {
			p.fail(v.Line, yamlwalk.Join(field, "kind"), fmt.Sprintf("%q is not a fault kind", text), didYouMean("use one of "+kindList(), text, kindNames()))
		}
	}
	if v := fs.Req("at", "add when the fault starts, in virtual time, like at: 2s"); v != nil {
		f.atLine = v.Line
		f.at, _ = p.duration(v, yamlwalk.Join(field, "at"), "use a time of 0 or more, like 2s", 0)
	}
	if v := fs.Opt("for"); v != nil {
		f.length, _ = p.duration(v, yamlwalk.Join(field, "for"), "use a duration above 0 like 3s, or leave for out to last until the end of the run", 1)
	}
	if !f.kind.valid() {
		return f
	}
	p.targets(fs, f)
	for _, key := range f.kind.params() {
		if v := fs.Opt(key); v != nil {
			p.param(key, v, yamlwalk.Join(field, key), f.kind, &f.params)
		}
	}
	for _, key := range f.kind.required() {
		if _, given := fs.Vals[key]; !given {
			p.fail(f.line, yamlwalk.Join(field, key), "required field is missing", fmt.Sprintf("a %s fault needs %s, like %s", f.kind, key, example(f.kind)))
		}
	}
	return f
}

func (p *parser) targets(fs *yamlwalk.Fields, f *handFault) {
	field := f.field
	switch {
	case f.kind == Partition:
		g, m := fs.Opt("groups"), fs.Opt("mode")
		switch {
		case g != nil && m != nil:
			p.fail(m.Line, yamlwalk.Join(field, "mode"), "is given together with groups", "give either groups (who is cut off from whom) or mode (a shape drawn at random), not both")
		case g == nil && m == nil:
			p.fail(f.line, yamlwalk.Join(field, "groups"), "required field is missing",
				"a partition needs groups, like groups: [[n1], [n2, n3]], or mode: "+strings.Join(modes, ", "))
		case g != nil:
			f.groups = p.groups(g, yamlwalk.Join(field, "groups"))
		default:
			p.param("mode", m, yamlwalk.Join(field, "mode"), f.kind, &f.params)
		}
	case f.kind.link():
		if v := fs.Req("nodes", fmt.Sprintf("a %s fault needs the nodes whose links it acts on, like nodes: [n1]", f.kind)); v != nil {
			f.nodes = p.names(v, yamlwalk.Join(field, "nodes"), "nodes")
		}
		if v := fs.Opt("to"); v != nil {
			f.to = p.names(v, yamlwalk.Join(field, "to"), "to")
			for _, t := range f.to {
				for _, n := range f.nodes {
					if t.name == n.name {
						p.fail(t.line, t.field, fmt.Sprintf("%s is also in nodes (line %d)", t.name, n.line), "a link joins two different nodes; remove it from one of the lists")
					}
				}
			}
		}
	default:
		if v := fs.Opt("nodes"); v != nil {
			f.nodes = p.names(v, yamlwalk.Join(field, "nodes"), "nodes")
		}
	}
}

// names reads a non-empty list of node names without repeats, the value of
// key, or a group of a partition when key is "".
func (p *parser) names(v *yaml.Node, field, key string) []nameRef {
	hint := fmt.Sprintf("write node names as a list, like %s: [n1, n2]", key)
	empty := fmt.Sprintf("name at least one node, like %s: [n1], or leave %s out", key, key)
	if key == "" {
		hint = "write each group as a list of names, like groups: [[n1], [n2, n3]]"
		empty = "name the group's nodes, or remove the group"
	}
	d := yamlwalk.Deref(v)
	if d.Kind == yaml.ScalarNode && key != "" {
		hint = fmt.Sprintf("write node names as a list, like %s: [%s]", key, d.Value)
	}
	items, ok := p.Sequence(v, field, hint)
	if !ok {
		return nil
	}
	if len(items) == 0 {
		p.fail(v.Line, field, "is empty", empty)
		return nil
	}
	var out []nameRef
	for i, item := range items {
		f := fmt.Sprintf("%s[%d]", field, i)
		text, ok := p.Scalar(item, f, "a node name", "write a node name like n1")
		if !ok {
			continue
		}
		dup := false
		for _, o := range out {
			if o.name == text {
				p.fail(item.Line, f, fmt.Sprintf("%s is listed twice (first on line %d)", text, o.line), "list each node once")
				dup = true
			}
		}
		if !dup {
			out = append(out, nameRef{name: text, line: item.Line, field: f})
		}
	}
	return out
}

// groups reads a partition's groups: at least two, disjoint, non-empty.
func (p *parser) groups(v *yaml.Node, field string) [][]nameRef {
	const hint = "write the groups as a list of lists of names, like groups: [[n1], [n2, n3]]"
	items, ok := p.Sequence(v, field, hint)
	if !ok {
		return nil
	}
	if len(items) < 2 {
		p.fail(v.Line, field, fmt.Sprintf("has %d group", len(items)),
			"a partition needs two groups or more: list the other side too, like groups: [[n1], [n2, n3]], or use mode: isolate")
		return nil
	}
	var out [][]nameRef
	seen := map[string]string{} // name -> field of the group it is in
	for i, item := range items {
		f := fmt.Sprintf("%s[%d]", field, i)
		g := p.names(item, f, "")
		for _, n := range g {
			if other, dup := seen[n.name]; dup {
				if other != f {
					p.fail(n.line, n.field, fmt.Sprintf("%s is already in %s", n.name, other),
						"groups must not overlap; to join two sides through one node use mode: bridge")
				}
				continue
			}
			seen[n.name] = f
		}
		out = append(out, g)
	}
	return out
}

// param reads one setting of a fault of kind k into ps.
func (p *parser) param(key string, v *yaml.Node, field string, k Kind, ps *params) {
	ok := false
	switch key {
	case "mode":
		var text string
		if text, ok = p.Scalar(v, field, "a mode", "use one of "+strings.Join(modes, ", ")); ok {
			if !slices.Contains(modes, text) {
				p.fail(v.Line, field, fmt.Sprintf("%q is not a partition mode", text), didYouMean("use one of "+strings.Join(modes, ", "), text, modes))
				ok = false
			}
			ps.mode = text
		}
	case "oneway":
		ps.oneway, ok = p.Bool(v, field, "oneway")
	case "proc":
		const hint = "give the name of a process on the node, like proc: etcd, or leave proc out for the node's main program"
		if ps.proc, ok = p.Scalar(v, field, "a process name", hint); ok {
			switch {
			case ps.proc == "":
				p.fail(v.Line, field, "is empty", hint)
				ok = false
			case strings.ContainsAny(ps.proc, "\x00\n/"):
				p.fail(v.Line, field, fmt.Sprintf("%q is not a process name", ps.proc), hint)
				ok = false
			}
		}
	case "percent":
		const hint = "use a number above 0 and at most 100, like percent: 20"
		var text string
		if ps.percent, text, ok = p.number(v, field, "percent", hint); ok {
			switch {
			case ps.percent < 0:
				p.fail(v.Line, field, fmt.Sprintf("%s is negative", text), hint)
				ok = false
			case ps.percent == 0:
				p.fail(v.Line, field, "0 would affect no frame", hint)
				ok = false
			case ps.percent > 100:
				p.fail(v.Line, field, fmt.Sprintf("%s is over 100", text), hint)
				ok = false
			}
		}
	case "delay":
		sign, hint := 0, "use a duration of 0 or more, like 10ms"
		if k == Delay {
			sign, hint = 1, "use a duration above 0, like 50ms"
		}
		ps.delay, ok = p.duration(v, field, hint, sign)
	case "jitter":
		ps.jitter, ok = p.duration(v, field, "use a duration of 0 or more, like 10ms", 0)
	case "rate":
		const hint = "write bytes per second as a whole number above 0, like rate: 102400"
		var text string
		if ps.rate, text, ok = p.integer(v, field, hint); ok && ps.rate <= 0 {
			problem := fmt.Sprintf("%s is negative", text)
			if ps.rate == 0 {
				problem = "0 would stop all traffic (use a partition for that)"
			}
			p.fail(v.Line, field, problem, hint)
			ok = false
		}
	case "ratio":
		const hint = "use a share of one CPU above 0 and at most 1, like ratio: 0.25"
		var text string
		if ps.ratio, text, ok = p.number(v, field, "ratio", hint); ok && (ps.ratio <= 0 || ps.ratio > 1) {
			p.fail(v.Line, field, fmt.Sprintf("%s is out of range", text), hint)
			ok = false
		}
	case "offset":
		if k == ClockJump {
			ps.offset, ok = p.duration(v, field, "", -1)
			if ok && ps.offset == 0 {
				p.fail(v.Line, field, fmt.Sprintf("%s is zero", yamlwalk.Deref(v).Value), "use a signed duration other than 0, like -30s or 5m")
				ok = false
			}
		} else {
			ps.offset, ok = p.duration(v, field, "use the amplitude of the steps, a duration above 0 like 200ms", 1)
		}
	case "period":
		ps.period, ok = p.duration(v, field, "use a duration above 0, like 50ms", 1)
	case "ppm":
		hint := fmt.Sprintf("use a whole number from -%d to %d other than 0, like ppm: 200", MaxPPM, MaxPPM)
		var text string
		if ps.ppm, text, ok = p.integer(v, field, hint); ok && (ps.ppm == 0 || ps.ppm < -MaxPPM || ps.ppm > MaxPPM) {
			p.fail(v.Line, field, fmt.Sprintf("%s is out of range", text), hint)
			ok = false
		}
	}
	if ok {
		ps.set[key] = v.Line
	}
}
