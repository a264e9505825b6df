package scenario

import (
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// clusterYAML is the cluster example of docs/scenario.md; TestDocExample
// keeps the two in step.
const clusterYAML = `name: etcd-cluster
seed: 1
duration: 10s
network:
  subnet: 10.89.0.0/24
  epoch: 1ms
nodes:
  - name: node
    count: 3
    binary: /usr/bin/etcd
    args:
      - --name=${DETVM_NODE}
      - --data-dir=/tmp/etcd
      - --listen-peer-urls=http://0.0.0.0:2380
      - --listen-client-urls=http://0.0.0.0:2379
      - --initial-advertise-peer-urls=http://${DETVM_NODE}:2380
      - --advertise-client-urls=http://${DETVM_NODE}:2379
      - --initial-cluster=node-1=http://node-1:2380,node-2=http://node-2:2380,node-3=http://node-3:2380
      - --initial-cluster-state=new
    daemon: true
    memory: 256
sidecar:
  include: [/usr/bin/etcdctl]
  commands:
    - name: put
      after: 3s
      run: [/usr/bin/etcdctl, --endpoints, "http://node-1:2379,http://node-2:2379,http://node-3:2379", put, k, v]
    - name: get
      run: [/usr/bin/etcdctl, --endpoints, "http://node-1:2379,http://node-2:2379,http://node-3:2379", get, k]
`

func clusterScenario() *Scenario {
	const endpoints = "http://node-1:2379,http://node-2:2379,http://node-3:2379"
	s := &Scenario{
		Name:     "etcd-cluster",
		Seed:     1,
		Duration: 10 * time.Second,
		Epoch:    time.Millisecond,
		Subnet:   netip.MustParsePrefix("10.89.0.0/24"),
		Sidecar: &Node{
			Name:    "sidecar",
			Sidecar: true,
			Addr:    netip.MustParseAddr("10.89.0.5"),
			Memory:  256,
			Include: []string{"/usr/bin/etcdctl"},
			Commands: []Command{
				{Name: "put", After: 3 * time.Second, Run: []string{"/usr/bin/etcdctl", "--endpoints", endpoints, "put", "k", "v"}},
				{Name: "get", Run: []string{"/usr/bin/etcdctl", "--endpoints", endpoints, "get", "k"}},
			},
		},
	}
	for i, name := range []string{"node-1", "node-2", "node-3"} {
		s.Nodes = append(s.Nodes, Node{
			Name:   name,
			Addr:   netip.AddrFrom4([4]byte{10, 89, 0, byte(2 + i)}),
			Binary: "/usr/bin/etcd",
			Args: []string{
				"--name=" + name,
				"--data-dir=/tmp/etcd",
				"--listen-peer-urls=http://0.0.0.0:2380",
				"--listen-client-urls=http://0.0.0.0:2379",
				"--initial-advertise-peer-urls=http://" + name + ":2380",
				"--advertise-client-urls=http://" + name + ":2379",
				"--initial-cluster=node-1=http://node-1:2380,node-2=http://node-2:2380,node-3=http://node-3:2380",
				"--initial-cluster-state=new",
			},
			Daemon: true,
			Memory: 256,
		})
	}
	return s
}

func TestParseCluster(t *testing.T) {
	got, err := Parse([]byte(clusterYAML), "etcd-cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if want := clusterScenario(); !reflect.DeepEqual(got, want) {
		t.Errorf("Parse:\n got %+v\nwant %+v", got, want)
	}
	if tb := mustRead(t, "testdata/etcd-cluster.yaml"); string(tb) != clusterYAML {
		t.Error("testdata/etcd-cluster.yaml differs from clusterYAML")
	}
	want := "127.0.0.1\tlocalhost\n10.89.0.2\tnode-1\n10.89.0.3\tnode-2\n10.89.0.4\tnode-3\n10.89.0.5\tsidecar\n"
	if h := got.Hosts(); h != want {
		t.Errorf("Hosts() = %q, want %q", h, want)
	}
	if gw := got.Gateway(); gw != netip.MustParseAddr("10.89.0.1") {
		t.Errorf("Gateway() = %v", gw)
	}
}

func TestGuests(t *testing.T) {
	s, err := Parse([]byte(`duration: 1s
network: {subnet: 192.168.8.0/29}
sidecar:
  commands: [{run: [/bin/true]}]
nodes:
  - {name: db, count: 2, binary: /bin/db}
  - {name: proxy, binary: /bin/proxy}
  - {name: web, count: 1, binary: /bin/web}
`), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, g := range s.Guests() {
		got = append(got, g.Name+" "+g.Addr.String())
	}
	want := []string{"db-1 192.168.8.2", "db-2 192.168.8.3", "proxy 192.168.8.4", "web 192.168.8.5", "sidecar 192.168.8.6"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("guests = %q, want %q", got, want)
	}
	// Guests points into the scenario.
	if g := s.Guests(); g[0] != &s.Nodes[0] || g[4] != s.Sidecar || !g[4].Sidecar || g[0].Sidecar {
		t.Error("Guests does not point at Nodes and Sidecar")
	}
	hosts := "127.0.0.1\tlocalhost\n192.168.8.2\tdb-1\n192.168.8.3\tdb-2\n192.168.8.4\tproxy\n192.168.8.5\tweb\n192.168.8.6\tsidecar\n"
	if h := s.Hosts(); h != hosts {
		t.Errorf("Hosts() = %q, want %q", h, hosts)
	}
	if s.Sidecar.Binary != "" || s.Sidecar.Memory != DefaultMemory {
		t.Errorf("sidecar: %+v", s.Sidecar)
	}
}

func TestNetworkDefaults(t *testing.T) {
	s, err := Parse([]byte("duration: 1s\nnodes: [{name: a, binary: b}]\n"), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if s.Subnet != netip.MustParsePrefix("10.89.0.0/24") || s.Epoch != time.Millisecond || s.Sidecar != nil {
		t.Errorf("defaults: subnet %v, epoch %v, sidecar %v", s.Subnet, s.Epoch, s.Sidecar)
	}
	if got := s.Guests(); len(got) != 1 || got[0].Addr != netip.MustParseAddr("10.89.0.2") {
		t.Errorf("guests: %+v", got)
	}
	if h := s.Hosts(); h != "127.0.0.1\tlocalhost\n10.89.0.2\ta\n" {
		t.Errorf("Hosts() = %q", h)
	}
	for _, c := range []struct {
		yaml   string
		subnet string
		epoch  time.Duration
	}{
		{"network:\n", "10.89.0.0/24", time.Millisecond},
		{"network: {}\n", "10.89.0.0/24", time.Millisecond},
		{"network: {epoch: 2ms}\n", "10.89.0.0/24", 2 * time.Millisecond},
		{"epoch: 3ms\nnetwork: {subnet: 172.16.0.0/12}\n", "172.16.0.0/12", 3 * time.Millisecond},
		{"network:\n  subnet: 10.0.0.0/8\n  epoch:\n", "10.0.0.0/8", time.Millisecond},
		{"network: {subnet: 192.168.1.8/29}\n", "192.168.1.8/29", time.Millisecond},
		{"sidecar:\n", "10.89.0.0/24", time.Millisecond},
	} {
		s, err := Parse([]byte("duration: 1s\n"+c.yaml+"nodes: [{name: a, binary: b}]\n"), "x.yaml")
		if err != nil {
			t.Errorf("%q: %v", c.yaml, err)
			continue
		}
		if s.Subnet.String() != c.subnet || s.Epoch != c.epoch || s.Sidecar != nil {
			t.Errorf("%q: subnet %v, epoch %v, sidecar %v", c.yaml, s.Subnet, s.Epoch, s.Sidecar)
		}
	}
}

func TestCount(t *testing.T) {
	s, err := Parse([]byte(`duration: 1s
nodes:
  - name: a
    count: 1
    binary: /bin/a
    args: ["${DETVM_NODE}"]
  - name: node
    count: 3
    binary: /bin/n
    args: [--id, "${DETVM_NODE}", "$DETVM_NODE", "${DETVM_NODES}"]
    env: {SELF: "${DETVM_NODE}.local", X: "1"}
    include: [/bin/c]
    files: [{src: ./f, dst: /f}]
    commands:
      - run: [/bin/sh, -c, "echo ${DETVM_NODE}"]
        env: {WHO: "${DETVM_NODE}"}
  - name: z
    binary: /bin/z
sidecar:
  commands: [{run: [/bin/echo, "${DETVM_NODE}"]}]
`), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range s.Nodes {
		names = append(names, n.Name)
	}
	if want := []string{"a", "node-1", "node-2", "node-3", "z"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("names = %q, want %q", names, want)
	}
	if got := s.Nodes[0].Args; !reflect.DeepEqual(got, []string{"a"}) {
		t.Errorf("a args = %q", got)
	}
	for i := 1; i <= 3; i++ {
		n := s.Nodes[i]
		if want := []string{"--id", n.Name, "$DETVM_NODE", "${DETVM_NODES}"}; !reflect.DeepEqual(n.Args, want) {
			t.Errorf("%s args = %q, want %q", n.Name, n.Args, want)
		}
		if want := []EnvVar{{"SELF", n.Name + ".local"}, {"X", "1"}}; !reflect.DeepEqual(n.Env, want) {
			t.Errorf("%s env = %q, want %q", n.Name, n.Env, want)
		}
		c := n.Commands[0]
		if c.Run[2] != "echo "+n.Name || c.Env[0].Value != n.Name || c.Name != "cmd-1" {
			t.Errorf("%s command = %+v", n.Name, c)
		}
		if n.Binary != "/bin/n" || n.Include[0] != "/bin/c" || n.Files[0].Dst != "/f" {
			t.Errorf("%s = %+v", n.Name, n)
		}
	}
	if got := s.Sidecar.Commands[0].Run[1]; got != "sidecar" {
		t.Errorf("sidecar run[1] = %q", got)
	}
	// The copies share nothing.
	s.Nodes[1].Include[0] = "changed"
	s.Nodes[1].Files[0].Dst = "changed"
	s.Nodes[1].Commands[0].Run[0] = "changed"
	s.Nodes[1].Commands[0].After = time.Hour
	if n := s.Nodes[2]; n.Include[0] != "/bin/c" || n.Files[0].Dst != "/f" || n.Commands[0].Run[0] != "/bin/sh" || n.Commands[0].After != 0 {
		t.Errorf("copies share memory: %+v", n)
	}
}

// TestLoadCount checks that every copy of a node and the sidecar get their
// host paths resolved.
func TestLoadCount(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "bin/server", 0o755)
	writeFile(t, dir, "bin/client", 0o755)
	writeFile(t, dir, "conf", 0o644)
	writeFile(t, dir, "check.sh", 0o755)
	writeFile(t, dir, "x.yaml", 0o644, `duration: 1s
nodes:
  - name: n
    count: 2
    binary: bin/server
    include: [bin/client]
    files: [{src: conf, dst: /etc/conf}]
    commands: [{run: [./check.sh]}]
sidecar:
  binary: bin/client
  include: [bin/client]
  files: [{src: conf, dst: /etc/conf}]
  commands: [{run: [./check.sh]}]
`)
	s, err := Load(filepath.Join(dir, "x.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Nodes) != 2 {
		t.Fatalf("%d nodes", len(s.Nodes))
	}
	for _, g := range s.Guests() {
		bin := filepath.Join(dir, "bin/server")
		if g.Sidecar {
			bin = filepath.Join(dir, "bin/client")
		}
		if g.Binary != bin || g.Include[0] != filepath.Join(dir, "bin/client") ||
			g.Files[0].Src != filepath.Join(dir, "conf") || g.Commands[0].Run[0] != filepath.Join(dir, "check.sh") {
			t.Errorf("%s: paths not resolved: %+v", g.Name, g)
		}
	}

	writeFile(t, dir, "y.yaml", 0o644, "duration: 1s\nnodes: [{name: a, binary: bin/server}]\nsidecar:\n  binary: bin/nope\n")
	_, err = Load(filepath.Join(dir, "y.yaml"))
	want := filepath.Join(dir, "y.yaml") + ":4: sidecar.binary: bin/nope (resolved to " + filepath.Join(dir, "bin/nope") + ") does not exist on this host; fix the path; relative paths start at the directory of the scenario file"
	if err == nil || err.Error() != want {
		t.Errorf("error\n got %v\nwant %s", err, want)
	}
}

func TestV1Errors(t *testing.T) {
	const (
		guestKeys = "binary, args, env, daemon, memory, disk, files, include, commands"
		one       = "nodes: [{name: a, binary: b}]\n"
	)
	var many strings.Builder
	many.WriteString("duration: 1s\nnodes:\n")
	for _, name := range []string{"a", "b", "c", "d"} {
		many.WriteString("  - {name: " + name + ", count: 64, binary: b}\n")
	}
	for _, c := range []struct{ name, yaml, want string }{
		// count
		{"count zero", "duration: 1s\nnodes:\n  - name: a\n    count: 0\n    binary: b\n",
			`x.yaml:4: nodes[0].count: 0 is out of range; use a value between 1 and 64`},
		{"count too large", "duration: 1s\nnodes:\n  - name: a\n    count: 65\n    binary: b\n",
			`x.yaml:4: nodes[0].count: 65 is out of range; use a value between 1 and 64`},
		{"count negative", "duration: 1s\nnodes: [{name: a, count: -2, binary: b}]\n",
			`x.yaml:2: nodes[0].count: -2 is out of range; use a value between 1 and 64`},
		{"count huge", "duration: 1s\nnodes: [{name: a, count: 99999999999999999999, binary: b}]\n",
			`x.yaml:2: nodes[0].count: 99999999999999999999 is out of range; use a value between 1 and 64`},
		{"count not a number", "duration: 1s\nnodes: [{name: a, count: three, binary: b}]\n",
			`x.yaml:2: nodes[0].count: "three" is not a number; use a whole number between 1 and 64, like 3`},
		{"count a list", "duration: 1s\nnodes: [{name: a, count: [3], binary: b}]\n",
			`x.yaml:2: nodes[0].count: is a list, not a number; use a whole number between 1 and 64, like 3`},
		{"count alias", "duration: 1s\nnodes: [{name: a, replicas: 3, binary: b}]\n",
			`x.yaml:2: nodes[0].replicas: unknown field; did you mean "count"? (allowed: name, count, ` + guestKeys + `)`},
		{"count name too long", "duration: 1s\nnodes:\n  - name: abcdefghijklmnopqrstuvwxyz-abcd\n    count: 10\n    binary: b\n",
			`x.yaml:3: nodes[0].name: "abcdefghijklmnopqrstuvwxyz-abcd" is too long for count: 10, which makes names up to "abcdefghijklmnopqrstuvwxyz-abcd-10", longer than 32 characters; shorten it to at most 29 characters`},
		// duplicates after expansion
		{"duplicate of a copy", "duration: 1s\nnodes:\n  - name: node\n    count: 3\n    binary: b\n  - name: node-2\n    binary: b\n",
			`x.yaml:6: nodes[1].name: "node-2" is already the name of nodes[0] (line 3), whose count: 3 makes node-1 to node-3; give every node its own name; with count, name is a prefix to which -1, -2, ... are appended`},
		{"copy duplicates a node", "duration: 1s\nnodes:\n  - name: node-2\n    binary: b\n  - name: node\n    count: 3\n    binary: b\n",
			`x.yaml:5: nodes[1].name: "node-2" (made by count: 3) is already the name of nodes[0] (line 3); give every node its own name; with count, name is a prefix to which -1, -2, ... are appended`},
		{"copies clash", "duration: 1s\nnodes:\n  - {name: n, count: 2, binary: b}\n  - {name: x, binary: b}\n  - {name: n, count: 4, binary: b}\n",
			`x.yaml:5: nodes[2].name: "n-1" (made by count: 4) is already the name of nodes[0] (line 3), whose count: 2 makes n-1 to n-2; give every node its own name; with count, name is a prefix to which -1, -2, ... are appended`},
		{"count 1 keeps the name", "duration: 1s\nnodes:\n  - {name: n, count: 1, binary: b}\n  - {name: n, binary: b}\n",
			`x.yaml:4: nodes[1].name: "n" is already the name of nodes[0] (line 3); give every node its own name`},
		{"node named sidecar", "duration: 1s\nnodes:\n  - name: a\n    binary: b\n  - name: sidecar\n    binary: b\n",
			`x.yaml:5: nodes[1].name: "sidecar" is reserved for the sidecar; give the node another name, or describe this guest under the top-level "sidecar:"`},
		// sidecar
		{"sidecar runs nothing", "duration: 1s\n" + one + "sidecar:\n  memory: 128\n  include: [/usr/bin/etcdctl]\n",
			`x.yaml:3: sidecar: runs nothing; add commands, a binary or a test`},
		{"sidecar empty mapping", "duration: 1s\n" + one + "sidecar: {}\n",
			`x.yaml:3: sidecar: runs nothing; add commands, a binary or a test`},
		{"sidecar empty commands", "duration: 1s\n" + one + "sidecar:\n  commands: []\n",
			`x.yaml:3: sidecar: runs nothing; add commands, a binary or a test`},
		{"sidecar name", "duration: 1s\n" + one + "sidecar:\n  name: client\n  commands: [{run: [/bin/true]}]\n",
			`x.yaml:4: sidecar.name: unknown field; the sidecar is always named "sidecar"; remove it (allowed: ` + guestKeys + `, test)`},
		{"sidecar count", "duration: 1s\n" + one + "sidecar:\n  count: 2\n  commands: [{run: [/bin/true]}]\n",
			`x.yaml:4: sidecar.count: unknown field; there is one sidecar; remove it, or make these guests nodes (allowed: ` + guestKeys + `, test)`},
		{"sidecar typo", "duration: 1s\n" + one + "sidecar:\n  comands: [{run: [/bin/true]}]\n",
			`x.yaml:4: sidecar.comands: unknown field; did you mean "commands"? (allowed: ` + guestKeys + `, test)`},
		{"sidecar a list", "duration: 1s\n" + one + "sidecar:\n  - commands: [{run: [/bin/true]}]\n",
			`x.yaml:4: sidecar: is a list, not a mapping; the sidecar is a single guest: indent its fields under "sidecar:" without "- ", like "commands:"`},
		{"sidecar args without binary", "duration: 1s\n" + one + "sidecar:\n  args: [-v]\n  commands: [{run: [/bin/true]}]\n",
			`x.yaml:4: sidecar.args: is for the main program, and the sidecar has no binary; add the binary they are for, or put them in a command's run`},
		{"sidecar env without binary", "duration: 1s\n" + one + "sidecar:\n  commands: [{run: [/bin/true]}]\n  env: {A: b}\n",
			`x.yaml:5: sidecar.env: is for the main program, and the sidecar has no binary; add the binary it is for, or set env on each command`},
		{"sidecar daemon without binary", "duration: 1s\n" + one + "sidecar:\n  commands: [{run: [/bin/true]}]\n  daemon: true\n",
			`x.yaml:5: sidecar.daemon: is for the main program, and the sidecar has no binary; add the binary it is for, or remove it`},
		{"sidecar binary empty", "duration: 1s\n" + one + "sidecar:\n  binary: \"\"\n",
			`x.yaml:4: sidecar.binary: is empty; give the host path of the node's program, like /usr/bin/etcd`},
		{"sidecar command error", "duration: 1s\n" + one + "sidecar:\n  commands:\n    - run: /bin/echo hi\n",
			`x.yaml:5: sidecar.commands[0].run: is a single value, not a list; write it as a list, like run: [/bin/echo, hi]`},
		// network
		{"network a list", "duration: 1s\nnetwork: [10.0.0.0/24]\n" + one,
			`x.yaml:2: network: is a list, not a mapping; indent its fields under "network:", like "subnet: 10.89.0.0/24"`},
		{"network unknown field", "duration: 1s\nnetwork:\n  cidr: 10.0.0.0/24\n" + one,
			`x.yaml:3: network.cidr: unknown field; did you mean "subnet"? (allowed: subnet, epoch)`},
		{"bad idle mode", "duration: 1s\nidle: sleep\n" + one,
			`x.yaml:2: idle: "sleep" is not an idle mode; use "spin" (guests never halt; any QEMU) or "warp" (idle guests skip ahead; detvm's patched QEMU)`},
		{"subnet at top level", "duration: 1s\nsubnet: 10.0.0.0/24\n" + one,
			`x.yaml:2: subnet: unknown field; subnet is a field of the network (network:), not of the scenario (top level); move it there (allowed here: name, seed, duration, epoch, network, nodes, sidecar, idle, faults, check)`},
		{"subnet not CIDR", "duration: 1s\nnetwork:\n  subnet: ten-net\n" + one,
			`x.yaml:3: network.subnet: "ten-net" is not a subnet in CIDR notation; write an IPv4 network in CIDR notation, like 10.89.0.0/24`},
		{"subnet bad address", "duration: 1s\nnetwork:\n  subnet: 10.0.0.256/24\n" + one,
			`x.yaml:3: network.subnet: "10.0.0.256/24" is not a subnet in CIDR notation; write an IPv4 network in CIDR notation, like 10.89.0.0/24`},
		{"subnet no length", "duration: 1s\nnetwork:\n  subnet: 10.1.2.3\n" + one,
			`x.yaml:3: network.subnet: 10.1.2.3 has no prefix length; add one, like 10.1.2.0/24`},
		{"subnet IPv6", "duration: 1s\nnetwork:\n  subnet: fd00::/64\n" + one,
			`x.yaml:3: network.subnet: fd00::/64 is an IPv6 subnet; the guest network is IPv4 only; use an IPv4 network like 10.89.0.0/24`},
		{"subnet IPv6 no length", "duration: 1s\nnetwork:\n  subnet: \"fd00::1\"\n" + one,
			`x.yaml:3: network.subnet: fd00::1 is an IPv6 subnet; the guest network is IPv4 only; use an IPv4 network like 10.89.0.0/24`},
		{"subnet host bits", "duration: 1s\nnetwork:\n  subnet: 10.89.0.1/24\n" + one,
			`x.yaml:3: network.subnet: 10.89.0.1/24 has host bits set; write the network address, 10.89.0.0/24`},
		{"subnet too long prefix", "duration: 1s\nnetwork:\n  subnet: 10.89.0.0/30\n" + one,
			`x.yaml:3: network.subnet: 10.89.0.0/30: prefix length /30 is out of range; use a prefix length between /8 and /29, like 10.89.0.0/24`},
		{"subnet too short prefix", "duration: 1s\nnetwork:\n  subnet: 10.0.0.0/7\n" + one,
			`x.yaml:3: network.subnet: 10.0.0.0/7: prefix length /7 is out of range; use a prefix length between /8 and /29, like 10.0.0.0/24`},
		{"subnet loopback", "duration: 1s\nnetwork:\n  subnet: 127.0.0.0/24\n" + one,
			`x.yaml:3: network.subnet: 127.0.0.0/24 overlaps the loopback range 127.0.0.0/8; use a private network like 10.89.0.0/24`},
		{"subnet multicast", "duration: 1s\nnetwork:\n  subnet: 239.0.0.0/8\n" + one,
			`x.yaml:3: network.subnet: 239.0.0.0/8 overlaps the multicast and reserved range 224.0.0.0/3; use a private network like 10.89.0.0/24`},
		{"subnet too small", "duration: 1s\nnetwork:\n  subnet: 10.89.0.0/29\nnodes:\n  - {name: n, count: 5, binary: b}\nsidecar:\n  commands: [{run: [/bin/true]}]\n",
			`x.yaml:3: network.subnet: 10.89.0.0/29 has room for 5 guests, not 6 guests (5 nodes and the sidecar); use a larger subnet, like 10.89.0.0/28`},
		{"subnet just fits", "duration: 1s\nnetwork:\n  subnet: 10.89.0.0/29\nnodes:\n  - {name: n, count: 6, binary: b}\n",
			`x.yaml:3: network.subnet: 10.89.0.0/29 has room for 5 guests, not 6 guests; use a larger subnet, like 10.89.0.0/28`},
		{"default subnet too small", many.String(),
			`x.yaml:2: nodes: 256 guests do not fit in the default subnet 10.89.0.0/24, which has room for 253; set a larger subnet, like "network: {subnet: 10.89.0.0/23}"`},
		// epoch
		{"both epochs", "duration: 1s\nepoch: 1ms\nnetwork:\n  epoch: 2ms\n" + one,
			`x.yaml:4: network.epoch: is also set as the top-level epoch (line 2); remove one of the two; network.epoch is the place for it`},
		{"both epochs top last", "duration: 1s\nnetwork: {epoch: 2ms}\n" + one + "epoch: 1ms\n",
			`x.yaml:4: epoch: is also set as network.epoch (line 2); remove one of the two; network.epoch is the place for it`},
		{"network epoch out of range", "duration: 1s\nnetwork:\n  epoch: 1s\n" + one,
			`x.yaml:3: network.epoch: 1s is out of range; use a value between 100µs and 100ms (default 1ms)`},
		{"network epoch not a duration", "duration: 1s\nnetwork:\n  epoch: 1\n" + one,
			`x.yaml:3: network.epoch: 1 has no unit; use Go duration syntax like 2s or 1500ms`},
		{"duration shorter than network epoch", "duration: 5ms\nnetwork: {epoch: 10ms}\n" + one,
			`x.yaml:1: duration: 5ms is shorter than one epoch (10ms); make the duration longer or the epoch shorter`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml), "x.yaml")
			if err == nil {
				t.Fatalf("no error; want\n%s", c.want)
			}
			if err.Error() != c.want {
				t.Errorf("error\n got %s\nwant %s", err, c.want)
			}
		})
	}
}

// TestMaxGuests checks the boundary of the default subnet: 253 guests fit,
// the last at .254.
func TestMaxGuests(t *testing.T) {
	var b strings.Builder
	b.WriteString("duration: 1s\nsidecar: {binary: /bin/s}\nnodes:\n")
	for _, name := range []string{"a", "b", "c"} {
		b.WriteString("  - {name: " + name + ", count: 64, binary: b}\n")
	}
	b.WriteString("  - {name: d, count: 60, binary: b}\n")
	s, err := Parse([]byte(b.String()), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	g := s.Guests()
	if len(g) != 253 || g[252].Addr != netip.MustParseAddr("10.89.0.254") || g[252].Name != "sidecar" || g[251].Name != "d-60" {
		t.Errorf("%d guests, last %s %v", len(g), g[len(g)-1].Name, g[len(g)-1].Addr)
	}
}
