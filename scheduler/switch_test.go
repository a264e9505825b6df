package scheduler

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/bits"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestSwitch runs the scripts in testdata/. Commands:
//
//	switch nodes=10.0.0.2,10.0.0.3          new switch; node i owns the i-th address
//	send epoch=E src=S dst=ADDR [len=N] [id=X]  one packet built by testPacket
//	send epoch=E src=S [raw=HEX]            one packet given as bytes
//	send epoch=E src=S                      several packets in one Send, one per
//	  dst=ADDR [len=N] [id=X] | raw=HEX     input line, in sending order
//	flood epoch=E src=S dst=ADDR n=N [len=L]  N packets in one Send, ids 0..N-1
//	rules                                   replace the fault table, one rule per
//	  [src=S] [dst=D] [from=F] [until=U]    input line (empty: clear); the keys
//	  [drop] [delay=N] [jitter=N] ...       are those Rule.String prints
//	seed value=N                            SetSeed
//	deliver epoch=E                         one line per frame delivered; a
//	                                        corrupted frame shows the flipped
//	                                        bit as flip=BYTE.BIT
//	deliver epoch=E summary                 one line per delivery epoch: frames,
//	                                        duplicates, corrupted, bytes
//	stats
//	pending
//	links                                   the rate-limited links' state
//
// Run with -rewrite to regenerate the expected output.
func TestSwitch(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		var s *Switch
		// Every packet given to Send, by (src, seq), so deliver can show
		// what corruption changed.
		var sent map[[2]uint64][]byte
		send := func(epoch uint64, src int, packets [][]byte) string {
			if src < 0 || src >= len(s.addrs) {
				t.Fatalf("no node %d", src)
			}
			for i, p := range packets {
				sent[[2]uint64{uint64(src), s.seq[src] + uint64(i)}] = slices.Clone(p)
			}
			before, pendingBefore := s.Stats(), s.Pending()
			s.Send(epoch, src, packets)
			return statsDelta(before, s.Stats(), s.Pending()-pendingBefore)
		}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			if s == nil && d.Cmd != "switch" {
				d.Fatalf(t, "%s before switch", d.Cmd)
			}
			switch d.Cmd {
			case "switch":
				var addrs []netip.Addr
				for _, arg := range d.CmdArgs {
					if arg.Key != "nodes" {
						d.Fatalf(t, "unknown argument %s", arg.Key)
					}
					for _, v := range arg.Vals {
						for _, a := range strings.Split(v, ",") {
							addrs = append(addrs, netip.MustParseAddr(strings.TrimSpace(a)))
						}
					}
				}
				s = NewSwitch(addrs)
				sent = map[[2]uint64][]byte{}
				var b strings.Builder
				for i, a := range s.Addrs() {
					fmt.Fprintf(&b, "node %d %v\n", i, a)
				}
				return b.String()

			case "send":
				var epoch uint64
				var src int
				d.ScanArgs(t, "epoch", &epoch)
				d.ScanArgs(t, "src", &src)
				var packets [][]byte
				if strings.TrimSpace(d.Input) == "" {
					packets = append(packets, parsePacket(t, d, s, src, d.CmdArgs, "epoch", "src"))
				} else {
					for _, line := range strings.Split(d.Input, "\n") {
						_, args, err := datadriven.ParseLine("packet " + line)
						if err != nil {
							d.Fatalf(t, "%v", err)
						}
						packets = append(packets, parsePacket(t, d, s, src, args))
					}
				}
				return send(epoch, src, packets)

			case "flood":
				var (
					epoch  uint64
					src, n int
					dst    string
					length = -1
				)
				d.ScanArgs(t, "epoch", &epoch)
				d.ScanArgs(t, "src", &src)
				d.ScanArgs(t, "dst", &dst)
				d.ScanArgs(t, "n", &n)
				if d.HasArg("len") {
					d.ScanArgs(t, "len", &length)
				}
				if src < 0 || src >= len(s.addrs) {
					d.Fatalf(t, "no node %d", src)
				}
				packets := make([][]byte, n)
				for i := range packets {
					p, err := testPacket(s.addrs[src], netip.MustParseAddr(dst), length, strconv.Itoa(i))
					if err != nil {
						d.Fatalf(t, "%v", err)
					}
					packets[i] = p
				}
				return send(epoch, src, packets)

			case "seed":
				var seed uint64
				d.ScanArgs(t, "value", &seed)
				s.SetSeed(seed)
				return fmt.Sprintf("seed %d", s.Seed())

			case "rules":
				var rules []Rule
				for _, line := range strings.Split(d.Input, "\n") {
					if strings.TrimSpace(line) == "" {
						continue
					}
					_, args, err := datadriven.ParseLine("rule " + line)
					if err != nil {
						d.Fatalf(t, "%v", err)
					}
					rules = append(rules, parseRule(t, d, args))
				}
				if err := s.SetRules(rules); err != nil {
					return "error: " + err.Error()
				}
				if len(rules) == 0 {
					return "(no rules)"
				}
				var b strings.Builder
				for i, r := range s.Rules() {
					fmt.Fprintf(&b, "%d: %v\n", i, r)
				}
				return b.String()

			case "deliver":
				var epoch uint64
				d.ScanArgs(t, "epoch", &epoch)
				frames := s.Deliver(epoch)
				if len(frames) == 0 {
					return "(none)"
				}
				if d.HasArg("summary") {
					return summarize(t, frames, sent)
				}
				var b strings.Builder
				for _, f := range frames {
					b.WriteString(formatFrame(t, f, sent[[2]uint64{uint64(f.Src), f.Seq}]))
					b.WriteByte('\n')
				}
				return b.String()

			case "stats":
				st := s.Stats()
				out := fmt.Sprintf("sent=%d delivered=%d pending=%d dropped-noroute=%d dropped-malformed=%d dropped-rule=%d",
					st.Sent, st.Delivered, s.Pending(), st.DroppedNoRoute, st.DroppedMalformed, st.DroppedByRule)
				if st.Duplicated != 0 || st.Corrupted != 0 {
					out += fmt.Sprintf(" duplicated=%d corrupted=%d", st.Duplicated, st.Corrupted)
				}
				return out

			case "links":
				ls := s.State().Links
				if len(ls) == 0 {
					return "(idle)"
				}
				var b strings.Builder
				for _, l := range ls {
					fmt.Fprintf(&b, "%d->%d epoch=%d bytes=%d\n", l.Src, l.Dst, l.Epoch, l.Bytes)
				}
				return b.String()

			case "pending":
				return strconv.Itoa(s.Pending())

			default:
				d.Fatalf(t, "unknown command %s", d.Cmd)
				return ""
			}
		})
	})
}

// parsePacket builds one packet from dst/len/id or raw arguments, ignoring
// the keys in skip (the send command's own arguments).
func parsePacket(t *testing.T, d *datadriven.TestData, s *Switch, src int, args []datadriven.CmdArg, skip ...string) []byte {
	t.Helper()
	var (
		dst    netip.Addr
		length = -1
		id     string
		raw    []byte
		isRaw  bool
	)
	for _, arg := range args {
		v := arg.SingleVal(t)
		var err error
		switch arg.Key {
		case "dst":
			dst, err = netip.ParseAddr(v)
		case "len":
			length, err = strconv.Atoi(v)
		case "id":
			id = v
		case "raw":
			isRaw = true
			raw, err = hex.DecodeString(v)
		default:
			if !contains(skip, arg.Key) {
				d.Fatalf(t, "unknown packet argument %s", arg.Key)
			}
		}
		if err != nil {
			d.Fatalf(t, "%s: %v", arg.Key, err)
		}
	}
	if isRaw {
		return raw
	}
	if !dst.IsValid() {
		d.Fatalf(t, "packet needs dst= or raw=")
	}
	if src < 0 || src >= len(s.addrs) {
		d.Fatalf(t, "no node %d", src)
	}
	p, err := testPacket(s.addrs[src], dst, length, id)
	if err != nil {
		d.Fatalf(t, "%v", err)
	}
	return p
}

func parseRule(t *testing.T, d *datadriven.TestData, args []datadriven.CmdArg) Rule {
	t.Helper()
	r := Rule{Src: -1, Dst: -1}
	for _, arg := range args {
		if arg.Key == "drop" {
			if len(arg.Vals) != 0 {
				d.Fatalf(t, "drop takes no value")
			}
			r.Drop = true
			continue
		}
		var err error
		v := arg.SingleVal(t)
		u64 := func(p *uint64) { *p, err = strconv.ParseUint(v, 10, 64) }
		ppm := func(p *uint32) {
			var x uint64
			x, err = strconv.ParseUint(v, 10, 32)
			*p = uint32(x)
		}
		switch arg.Key {
		case "src":
			r.Src, err = strconv.Atoi(v)
		case "dst":
			r.Dst, err = strconv.Atoi(v)
		case "from":
			u64(&r.FromEpoch)
		case "until":
			u64(&r.UntilEpoch)
		case "delay":
			u64(&r.DelayEpochs)
		case "jitter":
			u64(&r.JitterEpochs)
		case "loss":
			ppm(&r.LossPPM)
		case "duplicate":
			ppm(&r.DuplicatePPM)
		case "reorder":
			ppm(&r.ReorderPPM)
		case "reorder-epochs":
			u64(&r.ReorderEpochs)
		case "corrupt":
			ppm(&r.CorruptPPM)
		case "rate":
			u64(&r.RateBytesPerEpoch)
		default:
			d.Fatalf(t, "unknown rule argument %s", arg.Key)
		}
		if err != nil {
			d.Fatalf(t, "%s: %v", arg.Key, err)
		}
	}
	return r
}

func statsDelta(before, after Stats, queued int) string {
	parts := []string{fmt.Sprintf("queued=%d", queued)}
	for _, c := range []struct {
		name string
		n    uint64
	}{
		{"dropped-noroute", after.DroppedNoRoute - before.DroppedNoRoute},
		{"dropped-malformed", after.DroppedMalformed - before.DroppedMalformed},
		{"dropped-rule", after.DroppedByRule - before.DroppedByRule},
		{"duplicated", after.Duplicated - before.Duplicated},
		{"corrupted", after.Corrupted - before.Corrupted},
	} {
		if c.n != 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", c.name, c.n))
		}
	}
	return strings.Join(parts, " ")
}

// formatFrame renders f; orig is the packet as sent, from which the id is
// read (corruption may have hit the id in f.Data) and against which a
// flipped bit is shown as flip=BYTE.BIT.
func formatFrame(t *testing.T, f Frame, orig []byte) string {
	t.Helper()
	s := fmt.Sprintf("src=%d dst=%d seq=%d sent=%d deliver=%d", f.Src, f.Dst, f.Seq, f.SentEpoch, f.DeliverEpoch)
	if f.Copy != 0 {
		s += fmt.Sprintf(" copy=%d", f.Copy)
	}
	if id, ok := packetID(orig); ok {
		s += " id=" + id
	}
	s += fmt.Sprintf(" len=%d", len(f.Data))
	for _, d := range bitDiff(t, orig, f.Data) {
		s += fmt.Sprintf(" flip=%d.%d", d/8, d%8)
	}
	return s
}

// bitDiff returns the indices (byte*8 + bit) of the bits in which a and b,
// of equal length, differ.
func bitDiff(t *testing.T, a, b []byte) []int {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("frame of %d bytes delivered for a packet of %d", len(b), len(a))
	}
	var out []int
	for i := range a {
		for x := a[i] ^ b[i]; x != 0; x &= x - 1 {
			out = append(out, i*8+bits.TrailingZeros8(x))
		}
	}
	return out
}

// summarize renders frames as one line per delivery epoch.
func summarize(t *testing.T, frames []Frame, sent map[[2]uint64][]byte) string {
	t.Helper()
	var b strings.Builder
	for i := 0; i < len(frames); {
		j := i
		var copies, corrupted, bytes int
		for ; j < len(frames) && frames[j].DeliverEpoch == frames[i].DeliverEpoch; j++ {
			f := &frames[j]
			if f.Copy != 0 {
				copies++
			}
			if len(bitDiff(t, sent[[2]uint64{uint64(f.Src), f.Seq}], f.Data)) != 0 {
				corrupted++
			}
			bytes += len(f.Data)
		}
		fmt.Fprintf(&b, "deliver=%d frames=%d", frames[i].DeliverEpoch, j-i)
		if copies != 0 {
			fmt.Fprintf(&b, " copies=%d", copies)
		}
		if corrupted != 0 {
			fmt.Fprintf(&b, " corrupted=%d", corrupted)
		}
		fmt.Fprintf(&b, " bytes=%d\n", bytes)
		i = j
	}
	return b.String()
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// testProto is the IP protocol number RFC 3692 reserves for experiments, so
// tcpdump shows test packets as opaque rather than misparsing a payload.
const testProto = 253

// testPacket builds a minimal valid IPv4 packet of total length length (-1:
// just large enough). The payload is a length-prefixed id followed by the id
// repeated, so packetID can recover it and packets with different ids differ
// throughout.
func testPacket(src, dst netip.Addr, length int, id string) ([]byte, error) {
	if len(id) > 255 {
		return nil, fmt.Errorf("id %q longer than 255 bytes", id)
	}
	minLen := ipv4HeaderLen + 1 + len(id)
	if length < 0 {
		length = minLen
	}
	if length < minLen || length > 0xffff {
		return nil, fmt.Errorf("len=%d: want %d..65535 for id %q", length, minLen, id)
	}
	if !src.Is4() || !dst.Is4() {
		return nil, fmt.Errorf("addresses %v -> %v must be IPv4", src, dst)
	}
	p := make([]byte, length)
	p[0] = 0x45 // version 4, IHL 5 words
	binary.BigEndian.PutUint16(p[2:4], uint16(length))
	p[8] = 64 // TTL
	p[9] = testProto
	s4, d4 := src.As4(), dst.As4()
	copy(p[12:16], s4[:])
	copy(p[16:20], d4[:])
	binary.BigEndian.PutUint16(p[10:12], ipChecksum(p[:ipv4HeaderLen]))
	p[ipv4HeaderLen] = byte(len(id))
	if len(id) > 0 {
		for i := ipv4HeaderLen + 1; i < length; i += len(id) {
			copy(p[i:], id)
		}
	}
	return p, nil
}

// packetID recovers the id testPacket embedded, if the packet is one of its.
func packetID(p []byte) (string, bool) {
	if len(p) <= ipv4HeaderLen || p[9] != testProto {
		return "", false
	}
	n := int(p[ipv4HeaderLen])
	if n == 0 || ipv4HeaderLen+1+n > len(p) {
		return "", false
	}
	return string(p[ipv4HeaderLen+1 : ipv4HeaderLen+1+n]), true
}

func ipChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

func TestSendCopiesData(t *testing.T) {
	s := NewSwitch([]netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")})
	p, err := testPacket(netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), 40, "x")
	if err != nil {
		t.Fatal(err)
	}
	s.Send(0, 0, [][]byte{p})
	for i := range p {
		p[i] = 0
	}
	fs := s.Deliver(1)
	if len(fs) != 1 {
		t.Fatalf("delivered %d frames, want 1", len(fs))
	}
	if id, ok := packetID(fs[0].Data); !ok || id != "x" {
		t.Fatalf("frame data changed with the caller's buffer: id=%q ok=%v", id, ok)
	}
}

func TestNewSwitchRejectsBadConfig(t *testing.T) {
	for _, addrs := range [][]string{
		{"10.0.0.1", "10.0.0.1"},
		{"10.0.0.1", "::ffff:10.0.0.1"},
		{"fe80::1"},
	} {
		t.Run(strings.Join(addrs, "_"), func(t *testing.T) {
			var as []netip.Addr
			for _, a := range addrs {
				as = append(as, netip.MustParseAddr(a))
			}
			defer func() {
				if recover() == nil {
					t.Errorf("NewSwitch(%v) did not panic", addrs)
				}
			}()
			NewSwitch(as)
		})
	}
}

func TestClock(t *testing.T) {
	c := Clock{EpochNS: 1_000_000}
	for _, tc := range []struct {
		epoch uint64
		start int64
	}{{0, 0}, {1, 1_000_000}, {278, 278_000_000}} {
		if got := c.Start(tc.epoch); int64(got) != tc.start {
			t.Errorf("Start(%d) = %d, want %d", tc.epoch, got, tc.start)
		}
		if got := c.EpochAt(c.Start(tc.epoch)); got != tc.epoch {
			t.Errorf("EpochAt(Start(%d)) = %d", tc.epoch, got)
		}
		if tc.epoch > 0 {
			if got := c.EpochAt(c.Start(tc.epoch) - 1); got != tc.epoch-1 {
				t.Errorf("EpochAt(Start(%d)-1) = %d, want %d", tc.epoch, got, tc.epoch-1)
			}
		}
	}
	if got := c.EpochAt(-5); got != 0 {
		t.Errorf("EpochAt(-5) = %d, want 0", got)
	}
	if got := c.Start(1 << 62); int64(got) != 1<<63-1 {
		t.Errorf("Start overflow = %d, want saturation", got)
	}
}

// TestStateRoundTrip: a switch restored from another's State delivers what
// the original would have, in the same order, and counts the same.
func TestStateRoundTrip(t *testing.T) {
	addrs := []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3"), netip.MustParseAddr("10.0.0.4")}
	pkt := func(src, dst string, b byte) []byte {
		p := make([]byte, 20)
		p[0] = 0x45
		copy(p[12:16], netip.MustParseAddr(src).AsSlice())
		copy(p[16:20], netip.MustParseAddr(dst).AsSlice())
		return append(p, b)
	}
	a := NewSwitch(addrs)
	a.SetRules([]Rule{{Src: 0, Dst: 2, DelayEpochs: 3}})
	a.Send(1, 0, [][]byte{pkt("10.0.0.2", "10.0.0.4", 1), pkt("10.0.0.2", "10.0.0.3", 2)})
	a.Send(1, 1, [][]byte{pkt("10.0.0.3", "10.0.0.2", 3)})
	a.Send(2, 2, [][]byte{pkt("10.0.0.4", "10.0.0.2", 4)})
	st := a.State()
	b := NewSwitch(addrs)
	if err := b.Restore(st); err != nil {
		t.Fatal(err)
	}
	st.Queue[0].Data[20] = 99 // the copy is deep: changing it changes neither switch
	for epoch := uint64(2); epoch < 8; epoch++ {
		a.Send(epoch, 1, [][]byte{pkt("10.0.0.3", "10.0.0.4", byte(epoch))})
		b.Send(epoch, 1, [][]byte{pkt("10.0.0.3", "10.0.0.4", byte(epoch))})
		da, db := a.Deliver(epoch), b.Deliver(epoch)
		if !reflect.DeepEqual(da, db) {
			t.Fatalf("epoch %d: original delivered %v, restored %v", epoch, da, db)
		}
	}
	if a.Stats() != b.Stats() {
		t.Fatalf("stats differ: %+v vs %+v", a.Stats(), b.Stats())
	}
	if err := NewSwitch(addrs[:2]).Restore(st); err == nil {
		t.Fatal("restoring a 3-node state into a 2-node switch succeeded")
	}
}
