package scenario

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/detvm/detvm/faults"
	"github.com/detvm/detvm/internal/fielderr"
	"github.com/detvm/detvm/internal/yamlwalk"
)

// parser walks the yaml.Node tree by hand instead of letting yaml.v3 decode
// into structs: only the tree knows the line of every key and value, and the
// errors are worth more than the code saved.
type parser struct {
	yamlwalk.Walker // records in errs

	file  string
	errs  fielderr.List
	paths []hostPath // host paths for Load to resolve and check

	// The nodes as written, for expand to turn into Scenario.Nodes.
	templates []Node
	metas     []nodeMeta
	// Lines where a scenario with too many guests for its subnet is
	// reported: the subnet's if written, else the nodes key's.
	subnetLine, nodesLine int
	subnetBad             bool // the subnet written is invalid
}

func newParser(file string) *parser {
	p := &parser{file: file, errs: fielderr.List{File: file, Unnamed: "<scenario>"}}
	p.Walker = yamlwalk.Walker{
		Errs:      &p.errs,
		KeyHint:   "keys must be plain names like binary or memory",
		MergeHint: `merge a mapping defined with an anchor, like "<<: *defaults"`,
	}
	return p
}

// schema is the set of keys one kind of mapping allows, with a description
// used to tell a user that a key belongs somewhere else.
type schema struct {
	what string
	keys []string
	// extensions lets keys starting with "x-" through unchecked, as in
	// Compose files: they give shared settings a place to hold an anchor.
	extensions bool
	// rejected holds hints for keys that look as if they belonged here but
	// do not.
	rejected map[string]string
}

// guestKeys are the fields nodes and the sidecar share.
var guestKeys = []string{"binary", "args", "env", "daemon", "memory", "disk", "files", "include", "commands"}

var (
	topSchema     = schema{what: "the scenario (top level)", keys: []string{"name", "seed", "duration", "epoch", "network", "nodes", "sidecar", "idle", "faults", "check"}, extensions: true}
	nodeSchema    = schema{what: "a node (an item of nodes)", keys: append([]string{"name", "count"}, guestKeys...)}
	networkSchema = schema{what: "the network (network:)", keys: []string{"subnet", "epoch"}}
	sidecarSchema = schema{what: "the sidecar (sidecar:)", keys: append(slices.Clip(guestKeys), "test"), rejected: map[string]string{
		"name":  `the sidecar is always named "sidecar"; remove it`,
		"count": "there is one sidecar; remove it, or make these guests nodes",
	}}
	fileSchema    = schema{what: "a file (an item of files)", keys: []string{"src", "dst", "mode"}}
	commandSchema = schema{what: "a command (an item of commands)", keys: []string{"name", "run", "after", "env"}}
	diskSchema    = schema{what: "a disk (disk:)", keys: []string{"size", "mount"}}
	// schemas is in the order belongsTo tries them: a key that two kinds of
	// mapping allow is said to belong to the first.
	schemas = []schema{topSchema, nodeSchema, networkSchema, sidecarSchema, fileSchema, commandSchema, diskSchema, checkSchema, testSchema}
)

var (
	scenarioNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	nodeNameRE     = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
	envNameRE      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	intRE          = regexp.MustCompile(`^[+-]?[0-9]+(\.[0-9]*)?$`)
	memUnitRE      = regexp.MustCompile(`^([0-9]+)\s*([MmGg])(i?[Bb]?)?$`)
)

const durationHint = "use Go duration syntax like 2s or 1500ms"

func (p *parser) parse(data []byte) *Scenario {
	s := &Scenario{Name: defaultName(p.file), Seed: DefaultSeed, Epoch: DefaultEpoch, Subnet: netip.MustParsePrefix(DefaultSubnet)}
	if root := p.document(data); root != nil {
		p.scenario(root, s)
	}
	return s
}

// document returns the root node of the file's only document, or nil after
// recording why there is none.
func (p *parser) document(data []byte) *yaml.Node {
	docs, err := yamlwalk.DecodeAll(data)
	if err != nil {
		p.syntax(data, err)
		return nil
	}
	if len(docs) == 0 || isEmptyDoc(docs[0]) {
		p.fail(1, "", "the file is empty", `describe the run with at least "duration:" and "nodes:" (docs/scenario.md has an example)`)
		return nil
	}
	for _, d := range docs[1:] {
		if !isEmptyDoc(d) {
			p.fail(d.Line, "", `a second YAML document starts here (after "---")`, "keep one scenario per file")
			break
		}
	}
	return docs[0].Content[0]
}

func isEmptyDoc(d *yaml.Node) bool {
	return len(d.Content) == 0 || yamlwalk.IsNull(d.Content[0])
}

var unknownAnchorRE = regexp.MustCompile(`^unknown anchor '(.*)' referenced$`)

// parserProblems are the messages of yaml.v3's parser, as opposed to its
// scanner. For these yaml.v3 reports the 0-based line of the enclosing
// collection rather than of the problem, so the line needs fixing.
var parserProblems = map[string]bool{
	"did not find expected <stream-start>":   true,
	"did not find expected <document start>": true,
	"did not find expected node content":     true,
	"did not find expected key":              true,
	"did not find expected '-' indicator":    true,
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found duplicate %TAG directive":         true,
	"found undefined tag handle":             true,
}

// syntaxHints turn yaml.v3's terse messages into a next step for the
// mistakes a new user makes most.
var syntaxHints = map[string]string{
	"mapping values are not allowed in this context": `quote a value that contains ": ", and check this line's indentation`,
	"did not find expected key":                      "check this line's indentation: keys of one mapping must line up",
	"did not find expected '-' indicator":            `check this line's indentation: items of one list must line up, each starting with "- "`,
	"did not find expected ',' or ']'":               "close the [ list with ] and separate its items with commas",
	"did not find expected ',' or '}'":               "close the { mapping with } and separate its entries with commas",
	"found unexpected end of stream":                 "close the quote that starts here",
	"could not find expected ':'":                    `write "key: value" with a space after the colon, or close the quote above`,
}

func (p *parser) syntax(data []byte, err error) {
	line, msg, _ := yamlwalk.SplitError(err)
	starts := lineStarts(data)
	hint := syntaxHints[msg]
	switch {
	case parserProblems[msg]:
		line = refineLine(data, starts, line+1, msg)
	case unknownAnchorRE.MatchString(msg):
		name := unknownAnchorRE.FindStringSubmatch(msg)[1]
		line = lineOf(data, starts, "*"+name)
		hint = fmt.Sprintf("define the anchor with &%s before using *%s", name, name)
	}
	line = max(1, min(line, len(starts)-1))
	if text := lineText(data, starts, line); strings.Contains(text, "\t") && !strings.Contains(strings.TrimLeft(text, " \t"), "\t") {
		hint = "indent with spaces; YAML does not allow tabs in indentation"
	}
	p.fail(line, "yaml syntax", msg, hint)
}

// refineLine finds the line of a parser error: a line k such that the file
// cut after line k fails with the same message and cut before it does not.
// Binary search keeps this fast on big files; cutting inside a multi-line
// [list] or "string" fails differently and so counts as passing, which at
// worst moves the answer within the enclosing collection, where from (the
// line yaml.v3 names) already points.
func refineLine(data []byte, starts []int, from int, msg string) int {
	fails := func(k int) bool {
		_, err := yamlwalk.DecodeAll(data[:starts[k]])
		if err == nil {
			return false
		}
		_, m, ok := yamlwalk.SplitError(err)
		return ok && m == msg
	}
	last := len(starts) - 1
	if from < 1 || from > last || !fails(last) {
		return from
	}
	lo, hi := from-1, last // fails(hi); fails(lo) taken as false
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if fails(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}

// lineStarts returns the byte offset of the start of each line, plus one
// past the end, so that line k (1-based) is data[starts[k-1]:starts[k]].
func lineStarts(data []byte) []int {
	starts := []int{0}
	for i, c := range data {
		if c == '\n' && i+1 < len(data) {
			starts = append(starts, i+1)
		}
	}
	return append(starts, len(data))
}

func lineText(data []byte, starts []int, line int) string {
	if line < 1 || line >= len(starts) {
		return ""
	}
	return string(data[starts[line-1]:starts[line]])
}

func lineOf(data []byte, starts []int, s string) int {
	for k := 1; k < len(starts); k++ {
		if strings.Contains(lineText(data, starts, k), s) {
			return k
		}
	}
	return 1
}

func (p *parser) scenario(root *yaml.Node, s *Scenario) {
	d := yamlwalk.Deref(root)
	if d.Kind != yaml.MappingNode {
		p.fail(root.Line, "", "the file holds "+yamlwalk.KindName(d)+", not a mapping of settings", `start with top-level keys like "duration: 2s" and "nodes:"`)
		return
	}
	f := p.fields(d, "", topSchema)
	if v := f.Opt("name"); v != nil {
		if text, ok := p.Scalar(v, "name", "a name", `write a name like "name: etcd-single"`); ok {
			if scenarioNameRE.MatchString(text) {
				s.Name = text
			} else {
				like := sanitize(text, false)
				if like == "" {
					like = "etcd-single"
				}
				p.fail(v.Line, "name", fmt.Sprintf("%q is not a valid scenario name", text),
					fmt.Sprintf("use up to 64 letters, digits, '.', '_' or '-', starting with a letter or digit, like %q", like))
			}
		}
	}
	if v := f.Opt("seed"); v != nil {
		if seed, ok := p.seed(v); ok {
			s.Seed = seed
		}
	}
	if v := f.Opt("idle"); v != nil {
		if text, ok := p.Scalar(v, "idle", "a string", `use "idle: spin" or "idle: warp"`); ok {
			if text != IdleSpin && text != IdleWarp {
				p.fail(v.Line, "idle", fmt.Sprintf("%q is not an idle mode", text), `use "spin" (guests never halt; any QEMU) or "warp" (idle guests skip ahead; detvm's patched QEMU)`)
			} else {
				s.Idle = text
			}
		}
	}
	if v := f.Opt("check"); v != nil {
		p.check(v, s)
	}
	if v := f.Opt("faults"); v != nil {
		spec, err := faults.ParseSpec(v, p.file, "faults")
		if err != nil {
			p.faultErr(err)
		} else {
			s.Faults = spec
		}
	}
	durOK := false
	if v := f.Req("duration", `add the virtual-time limit of the run, like "duration: 2s"`); v != nil {
		if dur, ok := p.duration(v, "duration"); ok {
			if dur <= 0 {
				p.fail(v.Line, "duration", fmt.Sprintf("%s is not greater than 0", yamlwalk.Deref(v).Value), "give the run a positive virtual-time limit like 2s")
			} else {
				s.Duration, durOK = dur, true
			}
		}
	}
	var net *yamlwalk.Fields
	if v := f.Opt("network"); v != nil {
		net = p.network(v, s)
	}
	epochOK := p.epochs(f, net, s)
	if durOK && epochOK && s.Duration < s.Epoch {
		v := f.Vals["duration"]
		p.fail(v.Line, "duration", fmt.Sprintf("%s is shorter than one epoch (%v)", yamlwalk.Deref(v).Value, s.Epoch), "make the duration longer or the epoch shorter")
	}
	if v := f.Opt("sidecar"); v != nil {
		p.sidecar(f.Keys["sidecar"].Line, v, s)
	}
	v := f.Req("nodes", `add a list of nodes, each with at least "name:" and "binary:"`)
	if v == nil {
		return
	}
	p.nodesLine = f.Keys["nodes"].Line
	items, ok := p.Sequence(v, "nodes", `start each node with "- name: ..." and indent its other fields under name`)
	if !ok {
		return
	}
	if len(items) == 0 {
		p.fail(v.Line, "nodes", "is empty", `add at least one node, each with at least "name:" and "binary:"`)
		return
	}
	// These are the nodes as written; expand makes s.Nodes of them once
	// Load has resolved their host paths.
	p.templates = make([]Node, len(items))
	p.metas = make([]nodeMeta, len(items))
	for i, item := range items {
		p.metas[i] = p.node(item, fmt.Sprintf("nodes[%d]", i), &p.templates[i])
	}
}

// epochs reads the epoch, written at the top level (as before v1) or under
// network but not at both places, and reports whether what is written is
// valid.
func (p *parser) epochs(f, net *yamlwalk.Fields, s *Scenario) bool {
	top := f.Opt("epoch")
	var nested *yaml.Node
	if net != nil {
		nested = net.Opt("epoch")
	}
	ok := true
	for _, e := range []struct {
		v     *yaml.Node
		field string
	}{{top, "epoch"}, {nested, "network.epoch"}} {
		if e.v == nil {
			continue
		}
		if ep, valid := p.epoch(e.v, e.field); valid {
			s.Epoch = ep
		} else {
			ok = false
		}
	}
	if top != nil && nested != nil {
		// Reported at the second of the two, as for other duplicates.
		if nested.Line >= top.Line {
			p.fail(nested.Line, "network.epoch", fmt.Sprintf("is also set as the top-level epoch (line %d)", top.Line), "remove one of the two; network.epoch is the place for it")
		} else {
			p.fail(top.Line, "epoch", fmt.Sprintf("is also set as network.epoch (line %d)", nested.Line), "remove one of the two; network.epoch is the place for it")
		}
	}
	return ok
}

func (p *parser) epoch(v *yaml.Node, field string) (time.Duration, bool) {
	ep, ok := p.duration(v, field)
	if !ok {
		return 0, false
	}
	if ep < MinEpoch || ep > MaxEpoch {
		p.fail(v.Line, field, fmt.Sprintf("%s is out of range", yamlwalk.Deref(v).Value),
			fmt.Sprintf("use a value between %v and %v (default %v)", MinEpoch, MaxEpoch, DefaultEpoch))
		return 0, false
	}
	return ep, true
}

// nodeMeta is what expand needs to know of a node as written.
type nodeMeta struct {
	field    string // nodes[i]
	nameLine int    // 0 if the node has no valid name
	count    int
}

// node fills out from the mapping n.
func (p *parser) node(n *yaml.Node, field string, out *Node) nodeMeta {
	m := nodeMeta{field: field, count: 1}
	d := p.Mapping(n, field, `write each node as "- name: node-1" with its other fields indented under name`)
	if d == nil {
		return m
	}
	f := p.fields(d, field, nodeSchema)
	nameNode := f.Req("name", `add a name like "name: node-1"`)
	if nameNode != nil {
		if name, ok := p.name(nameNode, field+".name", "node-1"); ok {
			out.Name, m.nameLine = name, nameNode.Line
		}
	}
	if v := f.Opt("count"); v != nil {
		if c, ok := p.count(v, field+".count"); ok {
			m.count = c
		}
	}
	if m.nameLine != 0 && m.count > 1 {
		suffix := fmt.Sprintf("-%d", m.count)
		if last := out.Name + suffix; len(last) > maxNameLen {
			p.fail(m.nameLine, field+".name", fmt.Sprintf("%q is too long for count: %d, which makes names up to %q, longer than %d characters", out.Name, m.count, last, maxNameLen),
				fmt.Sprintf("shorten it to at most %d characters", maxNameLen-len(suffix)))
			out.Name, m.nameLine = "", 0
		}
	}
	p.guest(f, field, out, false)
	return m
}

// sidecar reads the sidecar mapping v, whose key is on line.
func (p *parser) sidecar(line int, v *yaml.Node, s *Scenario) {
	d := p.Mapping(v, "sidecar", `the sidecar is a single guest: indent its fields under "sidecar:" without "- ", like "commands:"`)
	if d == nil {
		return
	}
	out := &Node{Name: SidecarName, Sidecar: true}
	s.Sidecar = out
	f := p.fields(d, "sidecar", sidecarSchema)
	p.guest(f, "sidecar", out, true)
	if v := f.Opt("test"); v != nil {
		out.Test = p.test(v, s.Duration) // test.go
	}
	if f.Opt("binary") != nil {
		return
	}
	// As with a missing required field, a misspelt key is the real problem.
	c := f.Opt("commands")
	if (c == nil || yamlwalk.Deref(c).Kind == yaml.SequenceNode && len(yamlwalk.Deref(c).Content) == 0) && f.Opt("test") == nil &&
		!f.Guessed("commands") && !f.Guessed("binary") && !f.Guessed("test") {
		p.fail(line, "sidecar", "runs nothing", "add commands, a binary or a test")
	}
	// Without a binary there is no main program for these to apply to.
	for _, c := range []struct {
		key  string
		set  bool
		hint string
	}{
		{"args", len(out.Args) > 0, "add the binary they are for, or put them in a command's run"},
		{"env", len(out.Env) > 0, "add the binary it is for, or set env on each command"},
		{"daemon", out.Daemon, "add the binary it is for, or remove it"},
	} {
		if c.set {
			p.fail(f.Vals[c.key].Line, "sidecar."+c.key, "is for the main program, and the sidecar has no binary", c.hint)
		}
	}
}

// guest fills out from the fields that nodes and the sidecar share. The
// sidecar's binary is optional.
func (p *parser) guest(f *yamlwalk.Fields, field string, out *Node, sidecar bool) {
	out.Memory = DefaultMemory
	var bin *yaml.Node
	if sidecar {
		bin = f.Opt("binary")
	} else {
		bin = f.Req("binary", `add the host path of the node's program, like "binary: /usr/bin/etcd"`)
	}
	if bin != nil {
		if text, ok := p.nonEmpty(bin, field+".binary", "a path", "give the host path of the node's program, like /usr/bin/etcd"); ok {
			out.Binary = text
			p.paths = append(p.paths, hostPath{field: field + ".binary", line: bin.Line, target: &out.Binary, program: true, fix: "install it or fix the path"})
		}
	}
	if v := f.Opt("args"); v != nil {
		out.Args, _ = p.stringList(v, field+".args", "args", "[--verbose, --port, 8080]")
	}
	if v := f.Opt("env"); v != nil {
		out.Env = p.env(v, field+".env")
	}
	if v := f.Opt("daemon"); v != nil {
		out.Daemon, _ = p.Bool(v, field+".daemon", "daemon")
	}
	if v := f.Opt("memory"); v != nil {
		if m, ok := p.memory(v, field+".memory"); ok {
			out.Memory = m
		}
	}
	if v := f.Opt("disk"); v != nil {
		out.Disk = p.disk(v, field+".disk")
	}
	if v := f.Opt("include"); v != nil {
		field := field + ".include"
		if items, ok := p.list(v, field, "include", "[/usr/bin/etcdctl]"); ok {
			out.Include = make([]string, len(items))
			for i, item := range items {
				field := fmt.Sprintf("%s[%d]", field, i)
				if text, ok := p.nonEmpty(item, field, "a path", "give the host path of a program, like /usr/bin/etcdctl"); ok {
					out.Include[i] = text
					p.paths = append(p.paths, hostPath{field: field, line: item.Line, target: &out.Include[i], fix: "install it or fix the path"})
				}
			}
		}
	}
	if v := f.Opt("files"); v != nil {
		p.files(v, field+".files", out)
	}
	if v := f.Opt("commands"); v != nil {
		p.commands(v, field+".commands", out)
	}
}

func (p *parser) files(v *yaml.Node, field string, out *Node) {
	items, ok := p.Sequence(v, field, `start each file with "- src: ..." and indent dst under src`)
	if !ok {
		return
	}
	out.Files = make([]File, len(items))
	type seen struct{ index, line int }
	dsts := map[string]seen{}
	for i, item := range items {
		field := fmt.Sprintf("%s[%d]", field, i)
		line := p.fileItem(item, field, &out.Files[i])
		dst := out.Files[i].Dst
		if dst == "" {
			continue
		}
		if first, dup := dsts[dst]; dup {
			p.fail(line, field+".dst", fmt.Sprintf("%s is already the destination of files[%d] (line %d)", dst, first.index, first.line), "copy each guest path only once")
			continue
		}
		dsts[dst] = seen{i, line}
	}
}

// fileItem fills out from the mapping n and returns the line of its dst, or 0 if
// it has no valid dst.
func (p *parser) fileItem(n *yaml.Node, field string, out *File) int {
	d := p.Mapping(n, field, `write each file as "- src: ./host-file" with "dst: /guest/path" under src`)
	if d == nil {
		return 0
	}
	f := p.fields(d, field, fileSchema)
	if v := f.Req("src", `add the host file to copy, like "src: ./hosts"`); v != nil {
		if text, ok := p.nonEmpty(v, field+".src", "a path", "give the host path of the file to copy, like ./hosts"); ok {
			out.Src = text
			p.paths = append(p.paths, hostPath{field: field + ".src", line: v.Line, target: &out.Src, fix: "create it or fix the path"})
		}
	}
	dstLine := 0
	if v := f.Req("dst", `add the path of the copy in the guest, like "dst: /etc/hosts"`); v != nil {
		if text, ok := p.nonEmpty(v, field+".dst", "a path", "give the absolute path of the copy in the guest, like /etc/hosts"); ok {
			if problem, hint := checkGuestPath(text, out.Src); problem != "" {
				p.fail(v.Line, field+".dst", problem, hint)
			} else {
				out.Dst, dstLine = text, v.Line
			}
		}
	}
	if v := f.Opt("mode"); v != nil {
		out.Mode = p.mode(v, field+".mode")
	}
	return dstLine
}

func checkGuestPath(dst, src string) (problem, hint string) {
	base := "hosts"
	if src != "" {
		base = filepath.Base(src)
	}
	switch {
	case !strings.HasPrefix(dst, "/"):
		return fmt.Sprintf("%s is not an absolute guest path", dst), fmt.Sprintf("start it with /, like /%s", strings.TrimPrefix(dst, "./"))
	case dst == "/":
		return "/ is the guest's root directory, not a file", fmt.Sprintf("give the full path of the copy, like /%s", base)
	case strings.HasSuffix(dst, "/"):
		return fmt.Sprintf("%s ends with /", dst), fmt.Sprintf("give the full path of the copy, like %s%s", dst, base)
	case path.Clean(dst) != dst:
		return fmt.Sprintf("%s is not a clean path", dst), fmt.Sprintf("write it as %s", path.Clean(dst))
	}
	return "", ""
}

func (p *parser) commands(v *yaml.Node, field string, out *Node) {
	items, ok := p.Sequence(v, field, `start each command with "- run: [...]"`)
	if !ok {
		return
	}
	out.Commands = make([]Command, len(items))
	type seen struct {
		index, line int
		named       bool
	}
	names := map[string]seen{}
	for i, item := range items {
		field := fmt.Sprintf("%s[%d]", field, i)
		line, named := p.commandItem(item, field, i, &out.Commands[i])
		name := out.Commands[i].Name
		if line == 0 {
			continue
		}
		first, dup := names[name]
		if !dup {
			names[name] = seen{i, line, named}
			continue
		}
		switch {
		case named:
			p.fail(line, field+".name", fmt.Sprintf("%q is already the name of commands[%d] (line %d)", name, first.index, first.line), "give each command of a node its own name")
		default:
			// Only an explicit name can collide with a default one, as the
			// defaults differ from each other.
			p.fail(line, field, fmt.Sprintf("its default name %q is already the name of commands[%d] (line %d)", name, first.index, first.line), "rename that command or give this one a name")
		}
	}
}

// commandItem fills out from the mapping n, the index-th command of its node. It
// returns the line that names the command (its name, or the start of the
// mapping for a default name; 0 if the name is invalid) and whether the name
// was written.
func (p *parser) commandItem(n *yaml.Node, field string, index int, out *Command) (int, bool) {
	d := p.Mapping(n, field, `write each command as "- run: [/bin/program, arg]"`)
	if d == nil {
		return 0, false
	}
	f := p.fields(d, field, commandSchema)
	line, named := d.Line, false
	out.Name = fmt.Sprintf("cmd-%d", index+1)
	if v := f.Opt("name"); v != nil {
		named = true
		if name, ok := p.name(v, field+".name", out.Name); ok {
			out.Name, line = name, v.Line
		} else {
			line = 0
		}
	}
	if v := f.Req("run", `add the program and its arguments, like "run: [/bin/sh, -c, 'echo hi']"`); v != nil {
		run, ok := p.stringList(v, field+".run", "run", "[/bin/sh, -c, 'echo hi']")
		out.Run = run
		switch {
		case !ok:
		case len(out.Run) == 0:
			p.fail(v.Line, field+".run", "is empty", "give the program and its arguments, like [/bin/sh, -c, 'echo hi']")
		case out.Run[0] == "":
			p.fail(yamlwalk.Deref(v).Content[0].Line, field+".run[0]", "is empty", "give the path of the program to run, like /bin/sh")
		case !strings.HasPrefix(out.Run[0], "/"):
			p.paths = append(p.paths, hostPath{field: field + ".run[0]", line: yamlwalk.Deref(v).Content[0].Line, target: &out.Run[0], program: true, run: true})
		}
	}
	if v := f.Opt("after"); v != nil {
		if after, ok := p.duration(v, field+".after"); ok {
			if after < 0 {
				p.fail(v.Line, field+".after", fmt.Sprintf("%s is negative", yamlwalk.Deref(v).Value), "use a delay of 0 or more, like 500ms")
			} else {
				out.After = after
			}
		}
	}
	if v := f.Opt("env"); v != nil {
		out.Env = p.env(v, field+".env")
	}
	return line, named
}

// env reads a mapping of environment variables in the order written, which
// is why it walks the entries instead of using fields.
func (p *parser) env(n *yaml.Node, field string) []EnvVar {
	d := yamlwalk.Deref(n)
	switch d.Kind {
	case yaml.MappingNode:
	case yaml.SequenceNode:
		example := "{LOG_LEVEL: debug}"
		var pairs []string
		for _, item := range d.Content {
			if it := yamlwalk.Deref(item); it.Kind == yaml.ScalarNode {
				if k, v, ok := strings.Cut(it.Value, "="); ok {
					pairs = append(pairs, k+": "+flowItem(v))
				}
			}
		}
		if len(pairs) == len(d.Content) && len(pairs) > 0 {
			example = "{" + strings.Join(pairs, ", ") + "}"
		}
		p.fail(n.Line, field, "is a list, not a mapping", "write NAME: value pairs, like env: "+example)
		return nil
	default:
		p.fail(n.Line, field, "is a single value, not a mapping", "write NAME: value pairs, like env: {LOG_LEVEL: debug}")
		return nil
	}
	var out []EnvVar
	for _, e := range p.Entries(d, field) {
		if !envNameRE.MatchString(e.Name) {
			p.fail(e.Key.Line, field, fmt.Sprintf("%q is not a valid environment variable name", e.Name),
				fmt.Sprintf("use letters, digits and _, not starting with a digit, like %s", envName(e.Name)))
			continue
		}
		value, ok := p.Scalar(e.Val, field+"."+e.Name, "a value", "quote the value to pass it as text")
		if !ok || !p.noNUL(e.Val, field+"."+e.Name, value) {
			continue
		}
		out = append(out, EnvVar{Name: e.Name, Value: value})
	}
	return out
}

// name checks a node or command name.
func (p *parser) name(v *yaml.Node, field, example string) (string, bool) {
	text, ok := p.Scalar(v, field, "a name", fmt.Sprintf("write a name like %q", example))
	if !ok {
		return "", false
	}
	if !nodeNameRE.MatchString(text) {
		like := sanitize(strings.ToLower(text), true)
		if like == "" {
			like = example
		}
		p.fail(v.Line, field, fmt.Sprintf("%q is not a valid name", text),
			fmt.Sprintf("use 1 to 32 characters of a-z, 0-9 and '-', starting with a letter, like %q", like))
		return "", false
	}
	return text, true
}

func (p *parser) seed(v *yaml.Node) (uint64, bool) {
	const hint = "use a non-negative integer like 7"
	text, ok := p.Scalar(v, "seed", "a number", hint)
	if !ok {
		return 0, false
	}
	seed, err := strconv.ParseUint(text, 10, 64)
	switch {
	case err == nil:
		return seed, true
	case errors.Is(err, strconv.ErrRange):
		p.fail(v.Line, "seed", fmt.Sprintf("%s is too large", text), "use a non-negative integer below 2^64, like 7")
	case strings.HasPrefix(text, "-") && intRE.MatchString(text):
		p.fail(v.Line, "seed", fmt.Sprintf("%s is negative", text), hint)
	default:
		p.fail(v.Line, "seed", fmt.Sprintf("%q is not a number", text), hint)
	}
	return 0, false
}

func (p *parser) duration(v *yaml.Node, field string) (time.Duration, bool) {
	text, ok := p.Scalar(v, field, "a duration", durationHint)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(text)
	if err != nil {
		problem := fmt.Sprintf("%q is not a duration", text)
		if intRE.MatchString(text) {
			problem = fmt.Sprintf("%s has no unit", text)
		}
		p.fail(v.Line, field, problem, durationHint)
		return 0, false
	}
	return d, true
}

func (p *parser) memory(v *yaml.Node, field string) (int, bool) {
	hint := fmt.Sprintf("use a whole number of MiB between %d and %d, like %d", MinMemory, MaxMemory, DefaultMemory)
	text, ok := p.Scalar(v, field, "a number", hint)
	if !ok {
		return 0, false
	}
	m, err := strconv.Atoi(text)
	if err != nil {
		if u := memUnitRE.FindStringSubmatch(text); u != nil {
			n, _ := strconv.Atoi(u[1])
			if strings.EqualFold(u[2], "g") {
				n *= 1024
			}
			hint = fmt.Sprintf("memory is a number of MiB without a unit; write memory: %d", n)
		}
		p.fail(v.Line, field, fmt.Sprintf("%q is not a number", text), hint)
		return 0, false
	}
	if m < MinMemory || m > MaxMemory {
		p.fail(v.Line, field, fmt.Sprintf("%d is out of range", m), fmt.Sprintf("use a value between %d and %d (MiB)", MinMemory, MaxMemory))
		return 0, false
	}
	return m, true
}

// disk reads a disk mapping; nil if it is not one (the problem is
// recorded). Its fields are optional: "disk: {}" is a disk of the default
// size at the default mount point.
func (p *parser) disk(v *yaml.Node, field string) *Disk {
	d := p.Mapping(v, field, "write its size and mount point, like disk: {size: 64MiB, mount: /data}")
	if d == nil {
		return nil
	}
	f := p.fields(d, field, diskSchema)
	out := &Disk{Size: DefaultDiskSize, Mount: DefaultDiskMount}
	ok := true
	if v := f.Opt("size"); v != nil {
		out.Size, ok = p.diskSize(v, field+".size")
	}
	if v := f.Opt("mount"); v != nil {
		text, textOK := p.nonEmpty(v, field+".mount", "a path", "give the guest directory to mount the disk on, like /data")
		if textOK {
			if problem, hint := checkMountPath(text); problem != "" {
				p.fail(v.Line, field+".mount", problem, hint)
				textOK = false
			}
		}
		out.Mount, ok = text, ok && textOK
	}
	if !ok {
		return nil
	}
	return out
}

// diskSize reads a size in MiB or GiB: 64MiB, 1GiB, 64M, 1G, or a bare
// number of MiB as memory takes it. Sizes are binary: MB and GB mean MiB
// and GiB (an NVDIMM's size is a multiple of 2 MiB anyway).
func (p *parser) diskSize(v *yaml.Node, field string) (int64, bool) {
	hint := fmt.Sprintf("use a size in MiB or GiB between %s and %s, like %s", sizeText(MinDisk), sizeText(MaxDisk), sizeText(DefaultDiskSize))
	text, ok := p.Scalar(v, field, "a size", hint)
	if !ok {
		return 0, false
	}
	var size int64
	if n, err := strconv.ParseInt(text, 10, 64); err == nil {
		size = n << 20
		if n < 0 || n > MaxDisk>>20 {
			size = -1
		}
	} else if u := memUnitRE.FindStringSubmatch(text); u != nil {
		n, err := strconv.ParseInt(u[1], 10, 64)
		shift := 20
		if strings.EqualFold(u[2], "g") {
			shift = 30
		}
		size = n << shift
		if err != nil || n > MaxDisk>>shift {
			size = -1
		}
	} else {
		p.fail(v.Line, field, fmt.Sprintf("%q is not a size", text), hint)
		return 0, false
	}
	switch {
	case size < MinDisk || size > MaxDisk:
		p.fail(v.Line, field, fmt.Sprintf("%s is out of range", text), fmt.Sprintf("use a size between %s and %s", sizeText(MinDisk), sizeText(MaxDisk)))
	case size%DiskAlign != 0:
		down := size / DiskAlign * DiskAlign
		p.fail(v.Line, field, fmt.Sprintf("%s is not a multiple of %s, the NVDIMM's alignment", text, sizeText(DiskAlign)),
			fmt.Sprintf("use %s or %s", sizeText(max(down, MinDisk)), sizeText(down+DiskAlign)))
	default:
		return size, true
	}
	return 0, false
}

// sizeText writes a size in bytes the way a scenario may: 64MiB, 4GiB.
func sizeText(n int64) string {
	if n%(1<<30) == 0 {
		return fmt.Sprintf("%dGiB", n>>30)
	}
	return fmt.Sprintf("%dMiB", n>>20)
}

// kernelDirs are guest directories the agent mounts the kernel's own file
// systems on; a disk there would hide them.
var kernelDirs = []string{"/proc", "/sys", "/dev"}

func checkMountPath(dir string) (problem, hint string) {
	const like = "use a directory like /data"
	switch {
	case !strings.HasPrefix(dir, "/"):
		return fmt.Sprintf("%s is not an absolute guest path", dir), fmt.Sprintf("start it with /, like /%s", strings.TrimPrefix(dir, "./"))
	case dir == "/":
		return "/ is the guest's root directory, which holds its programs", like
	case path.Clean(dir) != dir:
		return fmt.Sprintf("%s is not a clean path", dir), fmt.Sprintf("write it as %s", path.Clean(dir))
	}
	for _, k := range kernelDirs {
		if dir == k || strings.HasPrefix(dir, k+"/") {
			return fmt.Sprintf("%s is under %s, where the guest's kernel shows its own files", dir, k), like
		}
	}
	return "", ""
}

func (p *parser) mode(v *yaml.Node, field string) os.FileMode {
	const hint = `use an octal string like "0644"`
	text, ok := p.Scalar(v, field, "a mode", hint)
	if !ok {
		return 0
	}
	digits := strings.TrimPrefix(strings.TrimPrefix(text, "0o"), "0O")
	m, err := strconv.ParseUint(digits, 8, 32)
	switch {
	case err != nil || digits == "":
		p.fail(v.Line, field, fmt.Sprintf("%q is not an octal mode", text), hint)
	case m > 0o777:
		p.fail(v.Line, field, fmt.Sprintf("%q has bits above 0777 (setuid, setgid or sticky)", text), `use permission bits only, like "0755"`)
	case m == 0:
		p.fail(v.Line, field, fmt.Sprintf("%q would mean: keep the host file's permissions", text), `leave mode out for that, or give a mode like "0644"`)
	default:
		return os.FileMode(m)
	}
	return 0
}

// fields checks the keys of the mapping n against sc. The hint for a key
// it does not allow is, in order: sc's own for it, a guess at the key
// meant (which silences a report that the guessed key is missing), or the
// other kind of mapping it belongs to.
func (p *parser) fields(n *yaml.Node, field string, sc schema) *yamlwalk.Fields {
	allowed := strings.Join(sc.keys, ", ")
	return p.Fields(n, field, sc.keys, func(key string) yamlwalk.Unknown {
		if sc.extensions && strings.HasPrefix(key, "x-") {
			return yamlwalk.Unknown{}
		}
		u := yamlwalk.Unknown{Problem: "unknown field", Hint: fmt.Sprintf("remove it or fix its spelling (allowed: %s)", allowed)}
		if r := sc.rejected[key]; r != "" {
			u.Hint = fmt.Sprintf("%s (allowed: %s)", r, allowed)
		} else if g := suggest(key, sc.keys); g != "" {
			u.Hint, u.Guess = fmt.Sprintf("did you mean %q? (allowed: %s)", g, allowed), g
		} else if other := belongsTo(key); other != "" {
			u.Hint = fmt.Sprintf("%s is a field of %s, not of %s; move it there (allowed here: %s)", key, other, sc.what, allowed)
		}
		return u
	})
}

func belongsTo(key string) string {
	for _, sc := range schemas {
		if slices.Contains(sc.keys, key) {
			return sc.what
		}
	}
	return ""
}

func (p *parser) nonEmpty(v *yaml.Node, field, want, hint string) (string, bool) {
	text, ok := p.Scalar(v, field, want, hint)
	if !ok || !p.noNUL(v, field, text) {
		return "", false
	}
	if text == "" {
		p.fail(v.Line, field, "is empty", hint)
		return "", false
	}
	return text, true
}

// noNUL rejects text a program could not receive: argv and environment
// strings end at the first NUL byte.
func (p *parser) noNUL(v *yaml.Node, field, text string) bool {
	if strings.ContainsRune(text, 0) {
		p.fail(v.Line, field, "contains a NUL character, which a program cannot receive", `remove the "\0"`)
		return false
	}
	return true
}

// list returns the items of a list. A single value where a list belongs is
// the commonest slip ("run: prog arg"), so the hint rewrites it as a list.
func (p *parser) list(v *yaml.Node, field, key, example string) ([]*yaml.Node, bool) {
	if d := yamlwalk.Deref(v); d.Kind == yaml.ScalarNode {
		if words := strings.Fields(d.Value); len(words) > 0 {
			items := make([]string, len(words))
			for i, w := range words {
				items[i] = flowItem(w)
			}
			example = "[" + strings.Join(items, ", ") + "]"
		}
	}
	return p.Sequence(v, field, fmt.Sprintf("write it as a list, like %s: %s", key, example))
}

// stringList returns a list of strings, and false if v is not a list of
// strings (the problem is recorded).
func (p *parser) stringList(v *yaml.Node, field, key, example string) ([]string, bool) {
	items, ok := p.list(v, field, key, example)
	if !ok {
		return nil, false
	}
	out := make([]string, len(items))
	for i, item := range items {
		field := fmt.Sprintf("%s[%d]", field, i)
		text, itemOK := p.Scalar(item, field, "a string", "quote it to pass it as text")
		if itemOK && p.noNUL(item, field, text) {
			out[i] = text
		} else {
			ok = false
		}
	}
	return out, ok
}

// flowItem quotes s where a YAML flow list would misread it.
func flowItem(s string) string {
	if s == "" || strings.ContainsAny(s, ",[]{}\"'#") || strings.Contains(s, ": ") ||
		strings.HasSuffix(s, ":") || strings.ContainsAny(s[:1], "&*!|>%@`?") {
		return strconv.Quote(s)
	}
	return s
}

// sanitize turns s into a likely valid name to suggest: invalid characters
// become '-'. A node name must also start with a letter.
func sanitize(s string, node bool) string {
	valid := func(r rune) bool {
		if node {
			return r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-'
		}
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-", r)
	}
	var b strings.Builder
	dash := false
	for _, r := range s {
		if valid(r) {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteRune('-')
			dash = true
		}
	}
	out := strings.Trim(b.String(), "-._")
	limit := 64
	if node {
		limit = 32
		if out != "" && (out[0] < 'a' || out[0] > 'z') {
			out = "node-" + out
		}
	}
	if len(out) > limit {
		out = strings.TrimRight(out[:limit], "-._")
	}
	return out
}

func envName(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r == '_' || r >= '0' && r <= '9' && i > 0:
			b.WriteRune(r)
		case r >= '0' && r <= '9':
			b.WriteString("_")
			b.WriteRune(r)
		default:
			b.WriteRune('_')
		}
	}
	return strings.ToUpper(b.String())
}

// defaultName derives a scenario name from the file name, so that a file
// need not repeat its own name.
func defaultName(file string) string {
	base := filepath.Base(file)
	for _, ext := range []string{".yaml", ".yml", ".YAML", ".YML"} {
		base = strings.TrimSuffix(base, ext)
	}
	if name := sanitize(base, false); name != "" && file != "" {
		return name
	}
	return "scenario"
}

// faultErr records an error of the faults section in the scenario's own
// form, so that it is ordered by line with the others.
func (p *parser) faultErr(err error) {
	var fe *faults.Error
	if errors.As(err, &fe) {
		p.fail(fe.Line, fe.Field, fe.Problem, fe.Hint)
		return
	}
	p.fail(0, "faults", err.Error(), "")
}

// checkFaults compiles the fault spec once against the scenario's nodes,
// so that a fault naming a node that does not exist is reported when the
// scenario loads, not when the run reaches it.
func (p *parser) checkFaults(s *Scenario) {
	if s.Faults == nil || len(p.errs.Errs) > 0 {
		return
	}
	topo := faults.Topology{Sidecar: -1}
	for i, g := range s.Guests() {
		topo.Names = append(topo.Names, g.Name)
		if g.Sidecar {
			topo.Sidecar = i
		}
	}
	if _, err := s.Faults.Compile(topo, s.Epoch, s.Duration, []faults.Segment{{Seed: s.Seed}}); err != nil {
		p.faultErr(err)
	}
}
