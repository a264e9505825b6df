package scenario

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/detvm/detvm/internal/yamlwalk"
)

// maxNameLen is the longest node name, as nodeNameRE allows.
const maxNameLen = 32

// NodeVar, written in a guest's args, env values, or a command's run or
// env values, is replaced by the guest's name. It is how the nodes that
// count makes from one entry tell themselves apart: --name=${DETVM_NODE}.
// The guest has the same value in its environment as DETVM_NODE.
const NodeVar = "${DETVM_NODE}"

// reservedNets are ranges a guest network must not overlap: "this
// network", loopback (the guests' own localhost), and multicast and the
// reserved class E.
var reservedNets = []struct {
	prefix netip.Prefix
	what   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), `"this network" range 0.0.0.0/8`},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback range 127.0.0.0/8"},
	{netip.MustParsePrefix("224.0.0.0/3"), "multicast and reserved range 224.0.0.0/3"},
}

// network reads the network mapping v; it returns its fields for the epoch
// to be read with the top-level one.
func (p *parser) network(v *yaml.Node, s *Scenario) *yamlwalk.Fields {
	d := p.Mapping(v, "network", `indent its fields under "network:", like "subnet: 10.89.0.0/24"`)
	if d == nil {
		return nil
	}
	f := p.fields(d, "network", networkSchema)
	if v := f.Opt("subnet"); v != nil {
		p.subnetLine = v.Line
		if pfx, ok := p.subnet(v); ok {
			s.Subnet = pfx
		} else {
			p.subnetBad = true
		}
	}
	return f
}

func (p *parser) subnet(v *yaml.Node) (netip.Prefix, bool) {
	const field = "network.subnet"
	text, ok := p.Scalar(v, field, "a subnet", "write an IPv4 network in CIDR notation, like 10.89.0.0/24")
	if !ok {
		return netip.Prefix{}, false
	}
	pfx, err := netip.ParsePrefix(text)
	if err != nil {
		hint := "write an IPv4 network in CIDR notation, like 10.89.0.0/24"
		if a, err := netip.ParseAddr(text); err == nil && a.Is4() {
			p.fail(v.Line, field, fmt.Sprintf("%s has no prefix length", text), fmt.Sprintf("add one, like %s", netip.PrefixFrom(a, 24).Masked()))
			return netip.Prefix{}, false
		} else if err == nil {
			pfx = netip.PrefixFrom(a, a.BitLen()) // reported as IPv6 below
		} else {
			p.fail(v.Line, field, fmt.Sprintf("%q is not a subnet in CIDR notation", text), hint)
			return netip.Prefix{}, false
		}
	}
	a := pfx.Addr()
	switch {
	case !a.Is4():
		p.fail(v.Line, field, fmt.Sprintf("%s is an IPv6 subnet", text), "the guest network is IPv4 only; use an IPv4 network like 10.89.0.0/24")
	case pfx.Bits() < MinSubnetBits || pfx.Bits() > MaxSubnetBits:
		p.fail(v.Line, field, fmt.Sprintf("%s: prefix length /%d is out of range", text, pfx.Bits()),
			fmt.Sprintf("use a prefix length between /%d and /%d, like %s", MinSubnetBits, MaxSubnetBits, netip.PrefixFrom(a, 24).Masked()))
	case pfx.Masked() != pfx:
		p.fail(v.Line, field, fmt.Sprintf("%s has host bits set", text), fmt.Sprintf("write the network address, %s", pfx.Masked()))
	default:
		for _, r := range reservedNets {
			if pfx.Overlaps(r.prefix) {
				p.fail(v.Line, field, fmt.Sprintf("%s overlaps the %s", text, r.what), "use a private network like 10.89.0.0/24")
				return netip.Prefix{}, false
			}
		}
		return pfx, true
	}
	return netip.Prefix{}, false
}

func (p *parser) count(v *yaml.Node, field string) (int, bool) {
	hint := fmt.Sprintf("use a whole number between 1 and %d, like 3", MaxCount)
	text, ok := p.Scalar(v, field, "a number", hint)
	if !ok {
		return 0, false
	}
	c, err := strconv.Atoi(text)
	switch {
	case errors.Is(err, strconv.ErrRange) || err == nil && (c < 1 || c > MaxCount):
		p.fail(v.Line, field, fmt.Sprintf("%s is out of range", text), fmt.Sprintf("use a value between 1 and %d", MaxCount))
	case err != nil:
		p.fail(v.Line, field, fmt.Sprintf("%q is not a number", text), hint)
	default:
		return c, true
	}
	return 0, false
}

// expand makes s.Nodes of the nodes as written, copying a node with count
// N into N nodes, checks that the names are unique and assigns the guests
// their addresses. Load calls it after resolving host paths so that every
// copy gets the resolved ones.
func (p *parser) expand(s *Scenario) {
	type owner struct {
		meta nodeMeta
		name string // as written
	}
	owners := map[string]owner{}
	for i := range p.templates {
		t, m := &p.templates[i], p.metas[i]
		if m.nameLine == 0 {
			continue
		}
		clash := false
		for k := 1; k <= m.count; k++ {
			name := t.Name
			if m.count > 1 {
				name = fmt.Sprintf("%s-%d", t.Name, k)
			}
			if !clash && name == SidecarName {
				clash = true
				p.fail(m.nameLine, m.field+".name", fmt.Sprintf("%q is reserved for the sidecar", name), `give the node another name, or describe this guest under the top-level "sidecar:"`)
			}
			if first, dup := owners[name]; !dup {
				owners[name] = owner{m, t.Name}
			} else if !clash {
				clash = true
				p.fail(m.nameLine, m.field+".name", duplicate(name, m, first.meta, first.name), dupHint(m, first.meta))
			}
			s.Nodes = append(s.Nodes, instance(t, name))
		}
	}
	if s.Sidecar != nil {
		*s.Sidecar = instance(s.Sidecar, SidecarName)
	}
	p.address(s)
}

func duplicate(name string, m, first nodeMeta, firstName string) string {
	msg := strconv.Quote(name)
	if m.count > 1 {
		msg = fmt.Sprintf("%q (made by count: %d)", name, m.count)
	}
	msg += fmt.Sprintf(" is already the name of nodes[%d] (line %d)", indexOf(first.field), first.nameLine)
	if first.count > 1 {
		msg += fmt.Sprintf(", whose count: %d makes %s-1 to %s-%d", first.count, firstName, firstName, first.count)
	}
	return msg
}

func dupHint(m, first nodeMeta) string {
	if m.count > 1 || first.count > 1 {
		return "give every node its own name; with count, name is a prefix to which -1, -2, ... are appended"
	}
	return "give every node its own name"
}

// indexOf returns i of a field nodes[i].
func indexOf(field string) int {
	i, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(field, "nodes["), "]"))
	return i
}

// instance returns a deep copy of t named name, with NodeVar replaced by
// name. Copies share nothing, so that a user of one cannot change another.
func instance(t *Node, name string) Node {
	r := strings.NewReplacer(NodeVar, name)
	n := *t
	n.Name = name
	n.Args = replaceAll(r, t.Args)
	n.Env = replaceEnv(r, t.Env)
	n.Files = slices.Clone(t.Files)
	n.Include = slices.Clone(t.Include)
	n.Commands = slices.Clone(t.Commands)
	if t.Disk != nil {
		d := *t.Disk
		n.Disk = &d
	}
	for i := range n.Commands {
		c := &n.Commands[i]
		c.Run = replaceAll(r, c.Run)
		c.Env = replaceEnv(r, c.Env)
	}
	return n
}

func replaceAll(r *strings.Replacer, in []string) []string {
	if in == nil {
		return nil
	}
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = r.Replace(s)
	}
	return out
}

func replaceEnv(r *strings.Replacer, in []EnvVar) []EnvVar {
	if in == nil {
		return nil
	}
	out := make([]EnvVar, len(in))
	for i, e := range in {
		out[i] = EnvVar{Name: e.Name, Value: r.Replace(e.Value)}
	}
	return out
}

// capacity is the number of guests a subnet has room for: all addresses
// but the network's, the gateway's (.1) and the broadcast address.
func capacity(pfx netip.Prefix) int {
	return 1<<(32-pfx.Bits()) - 3
}

// address gives the guests consecutive addresses from the subnet's .2 on,
// in the order of Guests.
func (p *parser) address(s *Scenario) {
	if p.subnetBad {
		return
	}
	guests := s.Guests()
	if n := len(guests); n > capacity(s.Subnet) {
		what := fmt.Sprintf("%d guests", n)
		if s.Sidecar != nil {
			what = fmt.Sprintf("%d guests (%d nodes and the sidecar)", n, n-1)
		}
		larger := ""
		for bits := s.Subnet.Bits() - 1; bits >= MinSubnetBits; bits-- {
			if pfx := netip.PrefixFrom(s.Subnet.Addr(), bits).Masked(); capacity(pfx) >= n {
				larger = pfx.String()
				break
			}
		}
		if p.subnetLine != 0 {
			hint := "use fewer nodes"
			if larger != "" {
				hint = "use a larger subnet, like " + larger
			}
			p.fail(p.subnetLine, "network.subnet", fmt.Sprintf("%s has room for %d guests, not %s", s.Subnet, capacity(s.Subnet), what), hint)
		} else {
			hint := "use fewer nodes"
			if larger != "" {
				hint = fmt.Sprintf(`set a larger subnet, like "network: {subnet: %s}"`, larger)
			}
			p.fail(p.nodesLine, "nodes", fmt.Sprintf("%s do not fit in the default subnet %s, which has room for %d", what, s.Subnet, capacity(s.Subnet)), hint)
		}
		return
	}
	assignAddrs(s)
}

// assignAddrs gives the guests consecutive addresses from the subnet's .2
// on (.1 is the gateway's), in the order of Guests.
func assignAddrs(s *Scenario) {
	a := s.Subnet.Addr().Next()
	for _, g := range s.Guests() {
		a = a.Next()
		g.Addr = a
	}
}

// Complete fills in what Parse would for a Scenario built in code (tests,
// benchmarks): the default subnet, epoch, memory, and disk size and mount
// point where they are zero, and the guests' addresses. On a parsed
// Scenario it changes nothing.
func (s *Scenario) Complete() error {
	if !s.Subnet.IsValid() {
		s.Subnet = netip.MustParsePrefix(DefaultSubnet)
	}
	if s.Epoch == 0 {
		s.Epoch = DefaultEpoch
	}
	for _, g := range s.Guests() {
		if g.Memory == 0 {
			g.Memory = DefaultMemory
		}
		if d := g.Disk; d != nil {
			if d.Size == 0 {
				d.Size = DefaultDiskSize
			}
			if d.Mount == "" {
				d.Mount = DefaultDiskMount
			}
		}
	}
	if n := len(s.Guests()); n > capacity(s.Subnet) {
		return fmt.Errorf("scenario %s: %d guests do not fit in subnet %s", s.Name, n, s.Subnet)
	}
	assignAddrs(s)
	return nil
}

// Guests returns the nodes in the order of Nodes followed by the sidecar,
// if any: every guest of the run, in the order their addresses follow.
func (s *Scenario) Guests() []*Node {
	out := make([]*Node, 0, len(s.Nodes)+1)
	for i := range s.Nodes {
		out = append(out, &s.Nodes[i])
	}
	if s.Sidecar != nil {
		out = append(out, s.Sidecar)
	}
	return out
}

// Gateway returns the address in Subnet reserved for the virtual switch:
// the first after the network address, like 10.89.0.1.
func (s *Scenario) Gateway() netip.Addr {
	return s.Subnet.Addr().Next()
}

// Hosts returns the /etc/hosts of the guests: localhost, then each guest's
// address and name in the order of Guests.
func (s *Scenario) Hosts() string {
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n")
	for _, g := range s.Guests() {
		fmt.Fprintf(&b, "%s\t%s\n", g.Addr, g.Name)
	}
	return b.String()
}
