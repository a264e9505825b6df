package scenario

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// exampleYAML is the example of docs/scenario.md; TestDocExample keeps the
// two in step.
const exampleYAML = `name: etcd-single
seed: 1
duration: 4s
epoch: 1ms
nodes:
  - name: node-1
    binary: /usr/bin/etcd
    args: [--data-dir, /tmp/etcd, --listen-client-urls, http://127.0.0.1:2379, --advertise-client-urls, http://127.0.0.1:2379]
    env:
      ETCD_LOG_LEVEL: warn
    daemon: true
    memory: 256
    include: [/usr/bin/etcdctl]
    files:
      - src: ./hosts
        dst: /etc/hosts
        mode: "0644"
    commands:
      - name: put
        after: 1500ms
        run: [/usr/bin/etcdctl, put, greeting, hello]
      - name: get
        run: [/usr/bin/etcdctl, get, greeting]
`

func exampleScenario() *Scenario {
	return &Scenario{
		Name:     "etcd-single",
		Seed:     1,
		Duration: 4 * time.Second,
		Epoch:    time.Millisecond,
		Subnet:   netip.MustParsePrefix("10.89.0.0/24"),
		Nodes: []Node{{
			Name:   "node-1",
			Addr:   netip.MustParseAddr("10.89.0.2"),
			Binary: "/usr/bin/etcd",
			Args: []string{"--data-dir", "/tmp/etcd", "--listen-client-urls", "http://127.0.0.1:2379",
				"--advertise-client-urls", "http://127.0.0.1:2379"},
			Env:     []EnvVar{{"ETCD_LOG_LEVEL", "warn"}},
			Daemon:  true,
			Memory:  256,
			Include: []string{"/usr/bin/etcdctl"},
			Files:   []File{{Src: "./hosts", Dst: "/etc/hosts", Mode: 0o644}},
			Commands: []Command{
				{Name: "put", After: 1500 * time.Millisecond, Run: []string{"/usr/bin/etcdctl", "put", "greeting", "hello"}},
				{Name: "get", Run: []string{"/usr/bin/etcdctl", "get", "greeting"}},
			},
		}},
	}
}

func TestParseExample(t *testing.T) {
	got, err := Parse([]byte(exampleYAML), "examples/etcd-single.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if want := exampleScenario(); !reflect.DeepEqual(got, want) {
		t.Errorf("Parse:\n got %+v\nwant %+v", got, want)
	}
}

func TestDocExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/scenario.md")
	if err != nil {
		t.Fatal(err)
	}
	for name, example := range map[string]string{"exampleYAML": exampleYAML, "clusterYAML": clusterYAML} {
		if !strings.Contains(string(doc), "```yaml\n"+example+"```") {
			t.Errorf("docs/scenario.md does not hold %s as an example; update one or the other", name)
		}
	}
	// Every other YAML block of the doc is a whole scenario too, and valid.
	blocks := strings.Split(string(doc), "```yaml\n")[1:]
	if len(blocks) < 4 {
		t.Errorf("docs/scenario.md has %d yaml blocks, want at least 4", len(blocks))
	}
	for i, b := range blocks {
		b, _, _ = strings.Cut(b, "```")
		if _, err := Parse([]byte(b), fmt.Sprintf("block-%d.yaml", i+1)); err != nil {
			t.Errorf("yaml block %d of docs/scenario.md: %v", i+1, err)
		}
	}
}

func TestTestdata(t *testing.T) {
	for _, name := range []string{"etcd-single.yaml", "three-nodes.yaml", "etcd-cluster.yaml"} {
		if _, err := Parse(mustRead(t, filepath.Join("testdata", name)), name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestLoadExample loads the example with its programs replaced by files in a
// temporary directory, since /usr/bin/etcd is not on a test machine.
func TestLoadExample(t *testing.T) {
	dir := t.TempDir()
	etcd := writeFile(t, dir, "bin/etcd", 0o755)
	etcdctl := writeFile(t, dir, "bin/etcdctl", 0o755)
	hosts := writeFile(t, dir, "hosts", 0o600)
	yaml := strings.NewReplacer("/usr/bin/etcdctl", etcdctl, "/usr/bin/etcd", etcd).Replace(exampleYAML)
	path := filepath.Join(dir, "etcd-single.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := exampleScenario()
	want.Path, want.Dir = path, dir
	n := &want.Nodes[0]
	n.Binary = etcd
	n.Include = []string{etcdctl}
	n.Files[0].Src = hosts
	for i := range n.Commands {
		n.Commands[i].Run[0] = etcdctl // absolute, so a guest path left as written
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load:\n got %+v\nwant %+v", got, want)
	}
}

// TestLoadRelative checks that relative host paths resolve against the
// scenario's directory, not the working directory.
func TestLoadRelative(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "sc/bin/server", 0o755)
	writeFile(t, dir, "sc/bin/client", 0o755)
	writeFile(t, dir, "sc/check.sh", 0o755)
	writeFile(t, dir, "sc/data/config", 0o644)
	writeFile(t, dir, "sc/x.yaml", 0o644, `duration: 1s
nodes:
  - name: a
    binary: bin/server
    include: [./bin/client]
    files:
      - {src: data/config, dst: /etc/config}
    commands:
      - run: [./check.sh, --quick]
      - run: [/bin/sh, -c, "echo done"]
`)
	t.Chdir(dir)
	s, err := Load("sc/x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sc := filepath.Join(dir, "sc")
	n := s.Nodes[0]
	for _, c := range []struct{ name, got, want string }{
		{"Path", s.Path, filepath.Join(sc, "x.yaml")},
		{"Dir", s.Dir, sc},
		{"Name", s.Name, "x"},
		{"Binary", n.Binary, filepath.Join(sc, "bin/server")},
		{"Include[0]", n.Include[0], filepath.Join(sc, "bin/client")},
		{"Files[0].Src", n.Files[0].Src, filepath.Join(sc, "data/config")},
		{"Commands[0].Run[0]", n.Commands[0].Run[0], filepath.Join(sc, "check.sh")},
		{"Commands[1].Run[0]", n.Commands[1].Run[0], "/bin/sh"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
}

func TestDefaults(t *testing.T) {
	s, err := Parse([]byte(`duration: 2s
nodes:
  - name: a
    binary: /bin/a
    memory:
    commands:
      - run: [/bin/one]
      - name: two
        run: [/bin/two]
      - run: [/bin/three]
        after: 10ms
`), "dir/my_test.v2.yml")
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "my_test.v2" || s.Seed != 1 || s.Epoch != time.Millisecond || s.Path != "" || s.Dir != "" {
		t.Errorf("scenario defaults: %+v", s)
	}
	n := s.Nodes[0]
	if n.Memory != 256 || n.Daemon || n.Args != nil || n.Env != nil || n.Files != nil || n.Include != nil {
		t.Errorf("node defaults: %+v", n)
	}
	var names []string
	for _, c := range n.Commands {
		names = append(names, c.Name)
	}
	if want := []string{"cmd-1", "two", "cmd-3"}; !reflect.DeepEqual(names, want) {
		t.Errorf("command names = %q, want %q", names, want)
	}
	if n.Commands[0].After != 0 || n.Commands[2].After != 10*time.Millisecond {
		t.Errorf("after: %v, %v", n.Commands[0].After, n.Commands[2].After)
	}

	for file, want := range map[string]string{"": "scenario", "a b.yaml": "a-b", "x.YAML": "x", "!!.yaml": "scenario"} {
		if s, err := Parse([]byte("duration: 1s\nnodes: [{name: a, binary: b}]\n"), file); err != nil || s.Name != want {
			t.Errorf("Parse(%q).Name = %q, %v; want %q", file, s.Name, err, want)
		}
	}
}

func TestEnvOrder(t *testing.T) {
	s, err := Parse([]byte(`duration: 2s
nodes:
  - name: a
    binary: /bin/a
    env:
      ZED: "1"
      ALPHA: two words
      MIDDLE:
      _x: 0644
      B: "yes"
    commands:
      - run: [/bin/c]
        env: {Z: z, A: a}
`), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := []EnvVar{{"ZED", "1"}, {"ALPHA", "two words"}, {"MIDDLE", ""}, {"_x", "0644"}, {"B", "yes"}}
	if got := s.Nodes[0].Env; !reflect.DeepEqual(got, want) {
		t.Errorf("node env = %q, want %q", got, want)
	}
	want = []EnvVar{{"Z", "z"}, {"A", "a"}}
	if got := s.Nodes[0].Commands[0].Env; !reflect.DeepEqual(got, want) {
		t.Errorf("command env = %q, want %q", got, want)
	}
}

// TestScalarsAsWritten checks that values keep the text the user typed
// rather than YAML's reading of it as a number or boolean.
func TestScalarsAsWritten(t *testing.T) {
	s, err := Parse([]byte(`duration: 1m30s
epoch: 100us
seed: 18446744073709551615
nodes:
  - name: a
    binary: /bin/a
    args: [8080, 0x10, true, 1e3, ~, ""]
    daemon: True
    memory: 4096
    files:
      - {src: a, dst: /a, mode: 0755}
      - {src: b, dst: /b, mode: 600}
      - {src: c, dst: /c, mode: "0o640"}
`), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if s.Duration != 90*time.Second || s.Epoch != 100*time.Microsecond || s.Seed != 1<<64-1 {
		t.Errorf("scenario: %+v", s)
	}
	n := s.Nodes[0]
	if want := []string{"8080", "0x10", "true", "1e3", "~", ""}; !reflect.DeepEqual(n.Args, want) {
		t.Errorf("args = %q, want %q", n.Args, want)
	}
	if !n.Daemon || n.Memory != 4096 {
		t.Errorf("daemon %v, memory %v", n.Daemon, n.Memory)
	}
	for i, want := range []os.FileMode{0o755, 0o600, 0o640} {
		if got := n.Files[i].Mode; got != want {
			t.Errorf("files[%d].mode = %o, want %o", i, got, want)
		}
	}
}

func TestMergeKeys(t *testing.T) {
	s, err := Parse(mustRead(t, "testdata/three-nodes.yaml"), "three-nodes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Nodes) != 3 {
		t.Fatalf("%d nodes", len(s.Nodes))
	}
	for i, n := range s.Nodes {
		if n.Binary != "./bin/server" || n.Memory != 128 || !n.Daemon || n.Name != fmt.Sprintf("node-%d", i+1) {
			t.Errorf("nodes[%d] did not get the shared fields: %+v", i, n)
		}
	}
	// Merged keys sit where the << is; a key written later overrides one.
	want := []EnvVar{{"LOG", "info"}, {"ROLE", "follower"}}
	if got := s.Nodes[1].Env; !reflect.DeepEqual(got, want) {
		t.Errorf("nodes[1].env = %q, want %q", got, want)
	}
	if got := s.Nodes[2].Args; !reflect.DeepEqual(got, []string{"--id", "3"}) {
		t.Errorf("nodes[2].args = %q", got)
	}
}

func TestParseErrors(t *testing.T) {
	const (
		nodeKeys = "(allowed: name, count, binary, args, env, daemon, memory, disk, files, include, commands)"
		topKeys  = "(allowed: name, seed, duration, epoch, network, nodes, sidecar, idle, faults, check)"
	)
	for _, c := range []struct {
		name, file, yaml, want string
	}{
		{"unknown field suggested", "examples/x.yaml", `name: x
duration: 2s
nodes:
  - name: node-1
    args: [a]
    daemon: true
    binaryy: /usr/bin/etcd
`, `examples/x.yaml:7: nodes[0].binaryy: unknown field; did you mean "binary"? ` + nodeKeys},
		{"unknown field far from all", "x.yaml", `duration: 2s
nodes:
  - name: a
    binary: b
    xyzzy: 1
`, `x.yaml:5: nodes[0].xyzzy: unknown field; remove it or fix its spelling ` + nodeKeys},
		{"unknown field case", "x.yaml", "Duration: 2s\nnodes: [{name: a, binary: b}]\n",
			`x.yaml:1: Duration: unknown field; did you mean "duration"? ` + topKeys},
		{"unknown field transposed", "x.yaml", "duration: 2s\nnodes: [{name: a, binary: b, memroy: 64}]\n",
			`x.yaml:2: nodes[0].memroy: unknown field; did you mean "memory"? ` + nodeKeys},
		{"unknown field alias", "x.yaml", "duration: 2s\nnodes: [{name: a, binary: b, environment: {A: b}}]\n",
			`x.yaml:2: nodes[0].environment: unknown field; did you mean "env"? ` + nodeKeys},
		{"field at wrong level", "x.yaml", "duration: 2s\nmemory: 512\nnodes: [{name: a, binary: b}]\n",
			`x.yaml:2: memory: unknown field; memory is a field of a node (an item of nodes), not of the scenario (top level); move it there (allowed here: name, seed, duration, epoch, network, nodes, sidecar, idle, faults, check)`},
		{"seed not a number", "x.yaml", "name: x\nseed: abc\nduration: 2s\nnodes: [{name: a, binary: b}]\n",
			`x.yaml:2: seed: "abc" is not a number; use a non-negative integer like 7`},
		{"seed negative", "x.yaml", "seed: -3\nduration: 2s\nnodes: [{name: a, binary: b}]\n",
			`x.yaml:1: seed: -3 is negative; use a non-negative integer like 7`},
		{"seed too large", "x.yaml", "seed: 18446744073709551616\nduration: 2s\nnodes: [{name: a, binary: b}]\n",
			`x.yaml:1: seed: 18446744073709551616 is too large; use a non-negative integer below 2^64, like 7`},
		{"duration not a duration", "x.yaml", "name: x\nseed: 1\nduration: 2 sec\nnodes: [{name: a, binary: b}]\n",
			`x.yaml:3: duration: "2 sec" is not a duration; use Go duration syntax like 2s or 1500ms`},
		{"duration without unit", "x.yaml", "duration: 2\nnodes: [{name: a, binary: b}]\n",
			`x.yaml:1: duration: 2 has no unit; use Go duration syntax like 2s or 1500ms`},
		{"duration zero", "x.yaml", "duration: 0s\nnodes: [{name: a, binary: b}]\n",
			`x.yaml:1: duration: 0s is not greater than 0; give the run a positive virtual-time limit like 2s`},
		{"duration missing", "x.yaml", "name: x\nnodes: [{name: a, binary: b}]\n",
			`x.yaml:1: duration: required field is missing; add the virtual-time limit of the run, like "duration: 2s"`},
		{"duration shorter than epoch", "x.yaml", "duration: 500us\nnodes: [{name: a, binary: b}]\n",
			`x.yaml:1: duration: 500us is shorter than one epoch (1ms); make the duration longer or the epoch shorter`},
		{"epoch out of range", "x.yaml", "duration: 2s\nepoch: 50us\nnodes: [{name: a, binary: b}]\n",
			`x.yaml:2: epoch: 50us is out of range; use a value between 100µs and 100ms (default 1ms)`},
		{"syntax error", "x.yaml", "name: x\nseed: 1\nduration: 2s\n  nodes: []\n",
			`x.yaml:4: yaml syntax: mapping values are not allowed in this context; quote a value that contains ": ", and check this line's indentation`},
		{"syntax error line fixed", "x.yaml", "duration: 2s\nnodes:\n  - name: a\n    binary: b\n   args: [c]\n",
			`x.yaml:5: yaml syntax: did not find expected '-' indicator; check this line's indentation: items of one list must line up, each starting with "- "`},
		{"syntax error tab", "x.yaml", "duration: 2s\nnodes:\n\t- name: a\n",
			`x.yaml:3: yaml syntax: found character that cannot start any token; indent with spaces; YAML does not allow tabs in indentation`},
		{"syntax error unknown anchor", "x.yaml", "duration: 2s\nnodes:\n  - *node\n",
			`x.yaml:3: yaml syntax: unknown anchor 'node' referenced; define the anchor with &node before using *node`},
		{"empty file", "x.yaml", "# nothing yet\n",
			`x.yaml:1: the file is empty; describe the run with at least "duration:" and "nodes:" (docs/scenario.md has an example)`},
		{"not a mapping", "x.yaml", "- duration: 2s\n",
			`x.yaml:1: the file holds a list, not a mapping of settings; start with top-level keys like "duration: 2s" and "nodes:"`},
		{"second document", "x.yaml", "duration: 2s\nnodes: [{name: a, binary: b}]\n---\nduration: 3s\n",
			`x.yaml:3: a second YAML document starts here (after "---"); keep one scenario per file`},
		{"duplicate key", "x.yaml", "duration: 2s\nnodes: [{name: a, binary: b}]\nduration: 3s\n",
			`x.yaml:3: duration: is set twice (first on line 1); remove one of the two`},
		{"nodes missing", "x.yaml", "duration: 2s\n",
			`x.yaml:1: nodes: required field is missing; add a list of nodes, each with at least "name:" and "binary:"`},
		{"nodes empty", "x.yaml", "duration: 2s\nnodes: []\n",
			`x.yaml:2: nodes: is empty; add at least one node, each with at least "name:" and "binary:"`},
		{"nodes not a list", "x.yaml", "duration: 2s\nnodes:\n  name: a\n  binary: b\n",
			`x.yaml:3: nodes: is a mapping, not a list; start each node with "- name: ..." and indent its other fields under name`},
		{"node name missing", "x.yaml", "duration: 2s\nnodes:\n  - name: a\n    binary: b\n  - binary: c\n    args: [x]\n",
			`x.yaml:5: nodes[1].name: required field is missing; add a name like "name: node-1"`},
		{"node binary missing", "x.yaml", "duration: 2s\nnodes:\n  - name: a\n    args: [x]\n",
			`x.yaml:3: nodes[0].binary: required field is missing; add the host path of the node's program, like "binary: /usr/bin/etcd"`},
		{"node binary no value", "x.yaml", "duration: 2s\nnodes:\n  - name: a\n    binary:\n",
			`x.yaml:4: nodes[0].binary: has no value; add the host path of the node's program, like "binary: /usr/bin/etcd"`},
		{"node binary empty", "x.yaml", "duration: 2s\nnodes:\n  - name: a\n    binary: \"\"\n",
			`x.yaml:4: nodes[0].binary: is empty; give the host path of the node's program, like /usr/bin/etcd`},
		{"duplicate node names", "x.yaml", "duration: 2s\nnodes:\n  - name: node-1\n    binary: a\n  - name: node-2\n    binary: a\n  - name: node-1\n    binary: a\n",
			`x.yaml:7: nodes[2].name: "node-1" is already the name of nodes[0] (line 3); give every node its own name`},
		{"node name invalid", "x.yaml", "duration: 2s\nnodes:\n  - name: Node_1\n    binary: a\n",
			`x.yaml:3: nodes[0].name: "Node_1" is not a valid name; use 1 to 32 characters of a-z, 0-9 and '-', starting with a letter, like "node-1"`},
		{"node not a mapping", "x.yaml", "duration: 2s\nnodes:\n  - node-1\n",
			`x.yaml:3: nodes[0]: is a single value, not a mapping; write each node as "- name: node-1" with its other fields indented under name`},
		{"args a string", "x.yaml", "duration: 2s\nnodes:\n  - name: a\n    binary: b\n    args: --port 80 --name a,b\n",
			`x.yaml:5: nodes[0].args: is a single value, not a list; write it as a list, like args: [--port, 80, --name, "a,b"]`},
		{"args item a mapping", "x.yaml", "duration: 2s\nnodes:\n  - name: a\n    binary: b\n    args: [--url, http: x]\n",
			`x.yaml:5: nodes[0].args[1]: is a mapping, not a string; quote it to pass it as text`},
		{"env a list", "x.yaml", "duration: 2s\nnodes:\n  - name: a\n    binary: b\n    env: [A=1, B=x]\n",
			`x.yaml:5: nodes[0].env: is a list, not a mapping; write NAME: value pairs, like env: {A: 1, B: x}`},
		{"env bad name", "x.yaml", "duration: 2s\nnodes:\n  - name: a\n    binary: b\n    env:\n      OK: 1\n      my-var: 2\n",
			`x.yaml:7: nodes[0].env: "my-var" is not a valid environment variable name; use letters, digits and _, not starting with a digit, like MY_VAR`},
		{"env duplicate", "x.yaml", "duration: 2s\nnodes:\n  - name: a\n    binary: b\n    env:\n      A: 1\n      A: 2\n",
			`x.yaml:7: nodes[0].env.A: is set twice (first on line 6); remove one of the two`},
		{"daemon not a bool", "x.yaml", "duration: 2s\nnodes:\n  - name: a\n    binary: b\n    daemon: yes\n",
			`x.yaml:5: nodes[0].daemon: "yes" is not true or false; write daemon: true or daemon: false`},
		{"memory not a number", "x.yaml", "duration: 2s\nnodes:\n  - name: a\n    binary: b\n    memory: lots\n",
			`x.yaml:5: nodes[0].memory: "lots" is not a number; use a whole number of MiB between 64 and 4096, like 256`},
		{"memory with unit", "x.yaml", "duration: 2s\nnodes:\n  - name: a\n    binary: b\n    memory: 1GiB\n",
			`x.yaml:5: nodes[0].memory: "1GiB" is not a number; memory is a number of MiB without a unit; write memory: 1024`},
		{"memory out of range", "x.yaml", "duration: 2s\nnodes:\n  - name: a\n    binary: b\n    memory: 32\n",
			`x.yaml:5: nodes[0].memory: 32 is out of range; use a value between 64 and 4096 (MiB)`},
		{"include a string", "x.yaml", "duration: 2s\nnodes:\n  - name: a\n    binary: b\n    include: /usr/bin/etcdctl\n",
			`x.yaml:5: nodes[0].include: is a single value, not a list; write it as a list, like include: [/usr/bin/etcdctl]`},
		{"file dst missing", "x.yaml", "duration: 2s\nnodes:\n  - name: a\n    binary: b\n    files:\n      - src: ./hosts\n",
			`x.yaml:6: nodes[0].files[0].dst: required field is missing; add the path of the copy in the guest, like "dst: /etc/hosts"`},
		{"file dst relative", "x.yaml", "duration: 2s\nnodes:\n  - name: a\n    binary: b\n    files:\n      - src: ./hosts\n        dst: etc/hosts\n",
			`x.yaml:7: nodes[0].files[0].dst: etc/hosts is not an absolute guest path; start it with /, like /etc/hosts`},
		{"file dst directory", "x.yaml", "duration: 2s\nnodes:\n  - name: a\n    binary: b\n    files:\n      - src: ./hosts\n        dst: /etc/\n",
			`x.yaml:7: nodes[0].files[0].dst: /etc/ ends with /; give the full path of the copy, like /etc/hosts`},
		{"file dst unclean", "x.yaml", "duration: 2s\nnodes:\n  - name: a\n    binary: b\n    files:\n      - {src: ./hosts, dst: /etc//x/../hosts}\n",
			`x.yaml:6: nodes[0].files[0].dst: /etc//x/../hosts is not a clean path; write it as /etc/hosts`},
		{"file dst duplicate", "x.yaml", "duration: 2s\nnodes:\n  - name: a\n    binary: b\n    files:\n      - {src: ./a, dst: /etc/x}\n      - {src: ./b, dst: /etc/x}\n",
			`x.yaml:7: nodes[0].files[1].dst: /etc/x is already the destination of files[0] (line 6); copy each guest path only once`},
		{"file mode not octal", "x.yaml", "duration: 2s\nnodes:\n  - name: a\n    binary: b\n    files:\n      - {src: ./a, dst: /a, mode: rw-r--r--}\n",
			`x.yaml:6: nodes[0].files[0].mode: "rw-r--r--" is not an octal mode; use an octal string like "0644"`},
		{"file mode setuid", "x.yaml", "duration: 2s\nnodes:\n  - name: a\n    binary: b\n    files:\n      - {src: ./a, dst: /a, mode: \"4755\"}\n",
			`x.yaml:6: nodes[0].files[0].mode: "4755" has bits above 0777 (setuid, setgid or sticky); use permission bits only, like "0755"`},
		{"file mode zero", "x.yaml", "duration: 2s\nnodes:\n  - name: a\n    binary: b\n    files:\n      - {src: ./a, dst: /a, mode: \"0000\"}\n",
			`x.yaml:6: nodes[0].files[0].mode: "0000" would mean: keep the host file's permissions; leave mode out for that, or give a mode like "0644"`},
		{"command run a string", "x.yaml", "duration: 2s\nnodes:\n  - name: a\n    binary: b\n    commands:\n      - run: /usr/bin/etcdctl get greeting\n",
			`x.yaml:6: nodes[0].commands[0].run: is a single value, not a list; write it as a list, like run: [/usr/bin/etcdctl, get, greeting]`},
		{"command run empty", "x.yaml", "duration: 2s\nnodes:\n  - name: a\n    binary: b\n    commands:\n      - run: []\n",
			`x.yaml:6: nodes[0].commands[0].run: is empty; give the program and its arguments, like [/bin/sh, -c, 'echo hi']`},
		{"command run missing", "x.yaml", "duration: 2s\nnodes:\n  - name: a\n    binary: b\n    commands:\n      - name: x\n        after: 1s\n",
			`x.yaml:6: nodes[0].commands[0].run: required field is missing; add the program and its arguments, like "run: [/bin/sh, -c, 'echo hi']"`},
		{"command after negative", "x.yaml", "duration: 2s\nnodes:\n  - name: a\n    binary: b\n    commands:\n      - run: [/bin/x]\n        after: -1s\n",
			`x.yaml:7: nodes[0].commands[0].after: -1s is negative; use a delay of 0 or more, like 500ms`},
		{"command names clash", "x.yaml", "duration: 2s\nnodes:\n  - name: a\n    binary: b\n    commands:\n      - {name: put, run: [/bin/x]}\n      - {name: put, run: [/bin/y]}\n",
			`x.yaml:7: nodes[0].commands[1].name: "put" is already the name of commands[0] (line 6); give each command of a node its own name`},
		{"command default name clash", "x.yaml", "duration: 2s\nnodes:\n  - name: a\n    binary: b\n    commands:\n      - {name: cmd-2, run: [/bin/x]}\n      - {run: [/bin/y]}\n",
			`x.yaml:7: nodes[0].commands[1]: its default name "cmd-2" is already the name of commands[0] (line 6); rename that command or give this one a name`},
		{"first error by line", "x.yaml", "duration: 2s\nnodes:\n  - name: a\n    binary: b\n    memory: 1\n    daemon: maybe\nseed: x\n",
			`x.yaml:5: nodes[0].memory: 1 is out of range; use a value between 64 and 4096 (MiB)`},
		{"merge of a scalar", "x.yaml", "duration: 2s\nnodes:\n  - <<: 3\n    name: a\n    binary: b\n",
			`x.yaml:3: nodes[0].<<: is a single value, not a mapping; merge a mapping defined with an anchor, like "<<: *defaults"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml), c.file)
			if err == nil {
				t.Fatalf("no error; want\n%s", c.want)
			}
			if err.Error() != c.want {
				t.Errorf("error\n got %s\nwant %s", err, c.want)
			}
			var e *Error
			if !errors.As(err, &e) || e.File != c.file || e.Line == 0 {
				t.Errorf("error is not an *Error with file and line: %#v", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error has more than one line")
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "bin/prog", 0o755)
	writeFile(t, dir, "bin/data", 0o644)
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	node := "duration: 2s\nnodes:\n  - name: a\n"
	for _, c := range []struct{ name, yaml, want string }{
		{"binary missing on host", `name: x
seed: 1
duration: 2s
epoch: 1ms
nodes:
  - name: node-1
    args: [a]
    daemon: true
    binary: /usr/bin/nope
`, `x.yaml:9: nodes[0].binary: /usr/bin/nope does not exist on this host; install it or fix the path`},
		{"binary relative missing", node + "    binary: bin/nope\n",
			`x.yaml:4: nodes[0].binary: bin/nope (resolved to ` + dir + `/bin/nope) does not exist on this host; fix the path; relative paths start at the directory of the scenario file`},
		{"binary home", node + "    binary: ~/bin/prog\n",
			`x.yaml:4: nodes[0].binary: ~/bin/prog (resolved to ` + dir + `/~/bin/prog) does not exist on this host; ~ is not expanded here; write the full path`},
		{"binary not executable", node + "    binary: bin/data\n",
			`x.yaml:4: nodes[0].binary: bin/data (resolved to ` + dir + `/bin/data) is not executable; make it executable with chmod +x ` + dir + `/bin/data`},
		{"binary a directory", node + "    binary: " + dir + "/sub\n",
			`x.yaml:4: nodes[0].binary: ` + dir + `/sub is a directory; name a file in it`},
		{"binary under a file", node + "    binary: bin/prog/x\n",
			`x.yaml:4: nodes[0].binary: bin/prog/x (resolved to ` + dir + `/bin/prog/x) does not exist on this host; fix the path; relative paths start at the directory of the scenario file`},
		{"include missing", node + "    binary: bin/prog\n    include:\n      - bin/data\n      - /usr/bin/nope-ctl\n",
			`x.yaml:7: nodes[0].include[1]: /usr/bin/nope-ctl does not exist on this host; install it or fix the path`},
		{"file src missing", node + "    binary: bin/prog\n    files:\n      - src: ./hosts\n        dst: /etc/hosts\n",
			`x.yaml:6: nodes[0].files[0].src: ./hosts (resolved to ` + dir + `/hosts) does not exist on this host; fix the path; relative paths start at the directory of the scenario file`},
		{"file src a directory", node + "    binary: bin/prog\n    files:\n      - {src: sub, dst: /sub}\n",
			`x.yaml:6: nodes[0].files[0].src: sub (resolved to ` + dir + `/sub) is a directory; name a file in it`},
		{"run bare name", node + "    binary: bin/prog\n    commands:\n      - run: [sh, -c, true]\n",
			`x.yaml:6: nodes[0].commands[0].run[0]: sh (resolved to ` + dir + `/sh) does not exist on this host; for a program in the guest give its absolute path, like /bin/sh; a relative path names a host file next to the scenario`},
		{"run not executable", node + "    binary: bin/prog\n    commands:\n      - run:\n          - bin/data\n",
			`x.yaml:7: nodes[0].commands[0].run[0]: bin/data (resolved to ` + dir + `/bin/data) is not executable; make it executable with chmod +x ` + dir + `/bin/data`},
		{"schema and host errors by line", node + "    binary: /usr/bin/nope\n    memory: 1\n",
			`x.yaml:4: nodes[0].binary: /usr/bin/nope does not exist on this host; install it or fix the path`},
	} {
		t.Run(c.name, func(t *testing.T) {
			writeFile(t, dir, "x.yaml", 0o644, c.yaml)
			t.Chdir(dir)
			_, err := Load("x.yaml")
			if err == nil {
				t.Fatalf("no error; want\n%s", c.want)
			}
			if err.Error() != c.want {
				t.Errorf("error\n got %s\nwant %s", err, c.want)
			}
		})
	}

	t.Run("no such file", func(t *testing.T) {
		_, err := Load(filepath.Join(dir, "nope.yaml"))
		want := dir + "/nope.yaml: cannot read the scenario file: no such file or directory; check the path"
		if err == nil || err.Error() != want {
			t.Errorf("error\n got %v\nwant %s", err, want)
		}
	})
}

// writeFile creates dir/name with the given mode and content, creating
// directories as needed, and returns its path.
func writeFile(t *testing.T, dir, name string, mode os.FileMode, content ...string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	data := "#!/bin/sh\n"
	if len(content) > 0 {
		data = content[0]
	}
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // WriteFile keeps the mode of an existing file
		t.Fatal(err)
	}
	return path
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestSyntaxLineAtEnd(t *testing.T) {
	_, err := Parse([]byte("duration: 2s\nnodes: [{name: a,\n"), "x.yaml")
	want := "x.yaml:2: yaml syntax: did not find expected node content"
	if err == nil || err.Error() != want {
		t.Errorf("error\n got %v\nwant %s", err, want)
	}
}

func TestScenarioName(t *testing.T) {
	_, err := Parse([]byte("name: My Test!\nduration: 2s\nnodes: [{name: a, binary: b}]\n"), "x.yaml")
	want := `x.yaml:1: name: "My Test!" is not a valid scenario name; use up to 64 letters, digits, '.', '_' or '-', starting with a letter or digit, like "My-Test"`
	if err == nil || err.Error() != want {
		t.Errorf("error\n got %v\nwant %s", err, want)
	}
}

// FuzzParse checks that no input makes Parse panic or return an error that
// is not one line with a line number.
func FuzzParse(f *testing.F) {
	f.Add([]byte(exampleYAML))
	f.Add([]byte(clusterYAML))
	f.Add([]byte("duration: 2s\nnodes:\n  - &n {name: a, binary: b, <<: *n}\n"))
	f.Add([]byte("a: 1\nb:\n\t- x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := Parse(data, "f.yaml")
		if err == nil {
			return
		}
		msg := err.Error()
		var e *Error
		if !errors.As(err, &e) || e.Line < 1 || strings.ContainsAny(msg, "\r\n") {
			t.Errorf("bad error %q", msg)
		}
	})
}

// TestComplete: a Scenario built in code gets what Parse would give it,
// and a parsed one is left as it was.
func TestComplete(t *testing.T) {
	s := &Scenario{Name: "x", Duration: time.Second, Nodes: []Node{{Name: "a", Binary: "/bin/true"}, {Name: "b", Binary: "/bin/true"}},
		Sidecar: &Node{Name: "sidecar", Sidecar: true}}
	if err := s.Complete(); err != nil {
		t.Fatal(err)
	}
	if s.Subnet.String() != DefaultSubnet || s.Epoch != DefaultEpoch || s.Nodes[1].Memory != DefaultMemory {
		t.Fatalf("defaults not filled: %+v", s)
	}
	if got := []string{s.Nodes[0].Addr.String(), s.Nodes[1].Addr.String(), s.Sidecar.Addr.String()}; strings.Join(got, " ") != "10.89.0.2 10.89.0.3 10.89.0.4" {
		t.Fatalf("addresses %v", got)
	}
	p, err := Parse([]byte("duration: 1s\nnetwork: {subnet: 10.1.0.0/28}\nnodes:\n  - {name: n, count: 2, binary: /bin/true}\n"), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	before := fmt.Sprintf("%+v", *p)
	if err := p.Complete(); err != nil || fmt.Sprintf("%+v", *p) != before {
		t.Fatalf("Complete changed a parsed scenario (%v):\n%s\n%s", err, before, fmt.Sprintf("%+v", *p))
	}
	big := &Scenario{Subnet: netip.MustParsePrefix("10.1.0.0/29"), Nodes: make([]Node, 6)}
	if err := big.Complete(); err == nil {
		t.Fatal("6 guests accepted in a /29 (room for 5)")
	}
}

// TestFaultsSection: the faults: section's errors come out in the
// scenario's form, with the line and the field, including the ones only
// the scenario's nodes can reveal.
func TestFaultsSection(t *testing.T) {
	const head = "duration: 2s\nnodes: [{name: a, binary: /bin/busybox}]\n"
	for _, tc := range []struct{ faults, want string }{
		{"faults:\n  - {kind: explode, at: 1s}\n", `x.yaml:4: faults[0].kind: "explode" is not a fault kind; use one of partition, loss, delay, duplicate, reorder, corrupt, clog, kill, pause, throttle, freeze, power-cut, vm-freeze, clock-jump, clock-strobe, clock-skew`},
		{"faults:\n  - {kind: kill, at: 1s, nodes: [b]}\n", `x.yaml:4: faults[0].nodes[0]: "b" is not a node; did you mean "a"? (use one of a)`},
		{"faults:\n  policy: {rates: {kill: -1}}\n", `x.yaml:4: faults.policy.rates.kill: -1 is negative; use expected new faults per virtual second, from 0 to 1000, like 0.2`},
		{"faults:\n  - {kind: loss, at: 1s, nodes: [a], percent: 120}\n", `x.yaml:4: faults[0].percent: 120 is over 100; use a number above 0 and at most 100, like percent: 20`},
		{"faults: random\n", ""},
	} {
		s, err := Parse([]byte(head+tc.faults), "x.yaml")
		switch {
		case tc.want == "" && (err != nil || s.Faults == nil):
			t.Errorf("%q: %v, faults %v", tc.faults, err, s)
		case tc.want != "" && (err == nil || err.Error() != tc.want):
			t.Errorf("%q:\n got %v\nwant %s", tc.faults, err, tc.want)
		}
	}
}
