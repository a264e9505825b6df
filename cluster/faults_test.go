package cluster_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/detvm/detvm/cluster"
	"github.com/detvm/detvm/faults"
	"github.com/detvm/detvm/internal/testenv"
	"github.com/detvm/detvm/scenario"
)

// guestEvent is one line of a node's events.jsonl.
type guestEvent struct {
	Epoch uint64 `json:"epoch"`
	Kind  string `json:"kind"`
	Proc  string `json:"proc"`
	Data  string `json:"data"`
	Code  *int   `json:"code"`
}

func readEvents(t *testing.T, runDir, node string) []guestEvent {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(runDir, node, "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var out []guestEvent
	for _, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var e guestEvent
		if err := json.Unmarshal(l, &e); err != nil {
			t.Fatalf("%s events: %v", node, err)
		}
		out = append(out, e)
	}
	return out
}

// lines returns the stdout lines of proc with the epoch they reached the
// controller in (the epoch they were written in).
func lines(evs []guestEvent, proc string) []guestEvent {
	var out []guestEvent
	for _, e := range evs {
		if e.Proc == proc && e.Kind == "stdout" {
			e.Data = strings.TrimSpace(e.Data)
			out = append(out, e)
		}
	}
	return out
}

// probe returns the lines of one probe of examples/faults/effects.yaml,
// which prefixes them with its name, without the prefix.
func probe(evs []guestEvent, name string) []guestEvent {
	var out []guestEvent
	for _, e := range append(lines(evs, "probes"), lines(evs, "rtt")...) {
		if rest, ok := strings.CutPrefix(e.Data, name+" "); ok {
			e.Data = rest
			out = append(out, e)
		}
	}
	return out
}

func in(e guestEvent, from, to uint64) bool { return e.Epoch >= from && e.Epoch < to }

// capFrame is a frame of network.pcap: the epoch it was sent in, and its
// addresses.
type capFrame struct {
	sent     uint64
	src, dst netip.Addr
	data     []byte
}

func readPcap(t *testing.T, path string, epochNS int64) []capFrame {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(bufio.NewReader(f))
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != layers.LinkTypeRaw {
		t.Fatalf("pcap link type %v", r.LinkType())
	}
	var out []capFrame
	for {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		// Stamped with the start of the epoch after the one it was sent in.
		sent := uint64(ci.Timestamp.UnixNano()/epochNS) - 1
		out = append(out, capFrame{sent: sent, src: netip.AddrFrom4([4]byte(data[12:16])), dst: netip.AddrFrom4([4]byte(data[16:20])), data: data})
	}
	return out
}

// TestFaultEffects runs examples/faults/effects.yaml, where every fault
// kind strikes once in its own window, and checks each one's effect as the
// guests saw it (or, for what only the wire shows, in the capture).
func TestFaultEffects(t *testing.T) {
	tools := testenv.Tools(t)
	if tools.PatchedQEMU == "" {
		t.Skip("detvm's patched QEMU is not built; `make setup` builds it")
	}
	s, err := scenario.Load(filepath.Join(testenv.RepoRoot(), "examples/faults/effects.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	res := run(t, tools, s, 1)
	dir := res.RunDir
	addr := map[string]netip.Addr{}
	for _, g := range s.Guests() {
		addr[g.Name] = g.Addr
	}
	if addr["node-2"] != netip.MustParseAddr("10.89.0.3") {
		t.Fatalf("node-2 is %v; the sidecar's get2 probe in effects.yaml fetches from 10.89.0.3", addr["node-2"])
	}
	n1, n2, n3 := readEvents(t, dir, "node-1"), readEvents(t, dir, "node-2"), readEvents(t, dir, "node-3")
	side := readEvents(t, dir, "sidecar")
	frames := readPcap(t, filepath.Join(dir, "network.pcap"), int64(s.Epoch))
	between := func(a, b string, from, to uint64) (n int) {
		for _, f := range frames {
			if f.src == addr[a] && f.dst == addr[b] && f.sent >= from && f.sent < to {
				n++
			}
		}
		return n
	}
	if len(res.Faults) != 15 {
		t.Errorf("%d faults applied, examples/faults/effects.yaml has 15: %+v", len(res.Faults), res.Faults)
	}

	t.Run("partition", func(t *testing.T) {
		for _, p := range [][2]string{{"node-1", "node-2"}, {"node-2", "node-1"}, {"node-1", "node-3"}, {"node-3", "node-1"}} {
			if n := between(p[0], p[1], 2000, 3000); n != 0 {
				t.Errorf("%d frames %s→%s crossed the partition", n, p[0], p[1])
			}
		}
		if between("node-2", "node-1", 1000, 2000) == 0 || between("node-2", "node-1", 3100, 3500) == 0 {
			t.Errorf("no traffic node-2→node-1 around the partition: the probe did not run")
		}
		var down, upAfter int
		for _, e := range probe(n2, "reach") {
			switch {
			case e.Data == "down" && in(e, 2000, 3500):
				down++
			case e.Data == "down" && e.Epoch < 8500:
				t.Errorf("node-2 could not reach node-1 at epoch %d, outside the partition", e.Epoch)
			case e.Data == "up" && in(e, 3500, 8500):
				upAfter++
			}
		}
		if down == 0 || upAfter == 0 {
			t.Errorf("node-2's probe: %d down in the partition, %d up after it", down, upAfter)
		}
	})
	t.Run("one-way-loss", func(t *testing.T) {
		if n := between("node-2", "node-3", 3500, 4500); n != 0 {
			t.Errorf("%d frames node-2→node-3 passed the one-way loss", n)
		}
		if n := between("node-3", "node-2", 3500, 4500); n == 0 {
			t.Errorf("nothing node-3→node-2 during the one-way loss: the other direction must pass")
		}
	})
	rtt := regexp.MustCompile(`time=([0-9.]+) ms`)
	ms := func(e guestEvent) float64 {
		m := rtt.FindStringSubmatch(e.Data)
		if m == nil {
			return -1 // a miss
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return v
	}
	t.Run("delay", func(t *testing.T) {
		var slow, fast int
		for _, e := range probe(side, "rtt1") {
			switch v := ms(e); {
			case in(e, 5250, 6000) && v >= 190:
				slow++
			case in(e, 5250, 6000):
				t.Errorf("rtt to node-1 at epoch %d: %q, want ≥ 200 ms under a 100 ms delay each way", e.Epoch, e.Data)
			case in(e, 4000, 5000) && v >= 0 && v < 50:
				fast++
			}
		}
		if slow == 0 || fast == 0 {
			t.Errorf("rtt to node-1: %d slow pings in the delay, %d fast ones before it", slow, fast)
		}
	})
	t.Run("duplicate", func(t *testing.T) {
		dups := 0
		var prev []byte
		for _, f := range frames {
			if f.src == addr["node-1"] && f.dst == addr["sidecar"] && f.sent >= 6000 && f.sent < 6500 {
				if bytes.Equal(f.data, prev) {
					dups++
				}
				prev = f.data
			}
		}
		if dups == 0 || res.Network.Duplicated == 0 {
			t.Errorf("duplicate: %d repeated frames in the capture, %d counted by the switch", dups, res.Network.Duplicated)
		}
	})
	t.Run("reorder", func(t *testing.T) {
		// The capture is in delivery order: a frame sent after another
		// but delivered before it has overtaken it.
		var last uint64
		overtaken, n := 0, 0
		for _, f := range frames {
			if f.src == addr["node-1"] && f.dst == addr["sidecar"] && f.sent >= 6500 && f.sent < 7000 {
				n++
				if f.sent < last {
					overtaken++
				}
				last = max(last, f.sent)
			}
		}
		if overtaken == 0 {
			t.Errorf("no reordering among %d frames node-1→sidecar", n)
		}
		for _, e := range probe(side, "big1") {
			t.Logf("the 64 KiB fetch through the reordering link got %s bytes", e.Data)
		}
	})
	t.Run("corrupt", func(t *testing.T) {
		// TCP: every segment from node-2 fails its checksum at the
		// sidecar, so fetches fail (reported when nc gives up, 1 s on).
		var miss, ok int
		for _, e := range probe(side, "get2") {
			switch {
			case in(e, 5500, 7000) && e.Data == "miss":
				miss++
			case in(e, 5550, 5900):
				t.Errorf("fetching from node-2 at epoch %d worked although every segment was corrupted: %q", e.Epoch, e.Data)
			case in(e, 4000, 5500) && e.Data == "hello":
				ok++
			}
		}
		if miss == 0 || ok == 0 || res.Network.Corrupted == 0 {
			t.Errorf("corrupt: %d misses inside, %d replies before, %d frames corrupted", miss, ok, res.Network.Corrupted)
		}
	})
	t.Run("clog", func(t *testing.T) {
		// 1428-byte pings at 5000 B/s each way: ≥ 0.28 s per direction.
		slow := 0
		for _, e := range probe(side, "rtt2") {
			if v := ms(e); in(e, 7600, 8400) && (v < 0 || v >= 500) {
				slow++
			} else if in(e, 7600, 8400) {
				t.Errorf("ping node-2 at epoch %d took %q through a 5000 B/s link", e.Epoch, e.Data)
			}
		}
		if slow == 0 {
			t.Errorf("no ping during the clog")
		}
	})
	main := mainProc(t, n1)
	beatsOf := func(evs []guestEvent, from, to uint64) (n int) {
		for _, e := range lines(evs, main) {
			if e.Data == "beat" && in(e, from, to) {
				n++
			}
		}
		return n
	}
	t.Run("kill", func(t *testing.T) {
		var killed, restarted bool
		for _, e := range n3 {
			if e.Proc == main && e.Kind == "exit" && e.Code != nil && *e.Code == -9 && in(e, 2000, 2050) {
				killed = true
			}
			if e.Proc == main && e.Kind == "start" && in(e, 3000, 3050) {
				restarted = true
			}
		}
		if !killed || !restarted {
			t.Errorf("node-3 main: killed at 2 s %v, restarted at 3 s %v", killed, restarted)
		}
		if n := beatsOf(n3, 2050, 3000); n != 0 {
			t.Errorf("node-3 beat %d times while killed", n)
		}
		if n := beatsOf(n3, 3050, 4000); n < 5 {
			t.Errorf("node-3 beat %d times after its restart", n)
		}
	})
	t.Run("pause", func(t *testing.T) {
		if n := beatsOf(n2, 4020, 5000); n != 0 {
			t.Errorf("node-2 beat %d times while paused", n)
		}
		if a, b := beatsOf(n2, 3000, 4000), beatsOf(n2, 5050, 6000); a < 5 || b < 5 {
			t.Errorf("node-2 beats before/after the pause: %d/%d", a, b)
		}
		for _, e := range n2 {
			if e.Proc == main && e.Kind == "exit" {
				t.Errorf("node-2 main exited (epoch %d): a pause must not kill", e.Epoch)
			}
		}
	})
	t.Run("freeze", func(t *testing.T) {
		if n := beatsOf(n1, 6020, 7000); n != 0 {
			t.Errorf("node-1 beat %d times while frozen", n)
		}
		if a, b := beatsOf(n1, 5000, 6000), beatsOf(n1, 7050, 8000); a < 5 || b < 5 {
			t.Errorf("node-1 beats before/after the freeze: %d/%d", a, b)
		}
	})
	t.Run("throttle", func(t *testing.T) {
		count := func(from, to uint64) float64 {
			n := 0
			for _, e := range probe(n3, "busy") {
				if in(e, from, to) {
					n++
				}
			}
			return float64(n) / float64(to-from)
		}
		before, during := count(6000, 7000), count(7100, 8000)
		if before == 0 {
			t.Fatalf("node-3's busy loop printed nothing before the throttle")
		}
		if r := during / before; r < 0.1 || r > 0.45 {
			t.Errorf("throttled to 0.25: busy loop ran at %.2f of its speed", r)
		} else {
			t.Logf("throttled to 0.25: busy loop ran at %.2f of its speed", r)
		}
	})
	offsets := func(evs []guestEvent, from, to uint64) []float64 {
		var out []float64
		for _, e := range probe(evs, "clock") {
			f := strings.Fields(e.Data)
			if len(f) != 2 || !in(e, from, to) {
				continue
			}
			wall, _ := strconv.ParseFloat(f[0], 64)
			up, _ := strconv.ParseFloat(f[1], 64)
			out = append(out, wall-up)
		}
		return out
	}
	near := func(a, b, tol float64) bool { return a-b <= tol && b-a <= tol }
	t.Run("clock-jump", func(t *testing.T) {
		base := offsets(n1, 1000, 3000)
		if len(base) == 0 {
			t.Fatal("node-1 printed no clock before the jump")
		}
		for _, o := range offsets(n1, 3010, 4000) {
			if !near(o, base[0]+3600, 2) {
				t.Errorf("node-1's wall clock during the +1h jump is %+.0f s off, want +3600", o-base[0])
			}
		}
		for _, o := range offsets(n1, 4010, 6000) {
			if !near(o, base[0], 2) {
				t.Errorf("node-1's wall clock after the jump healed is %+.0f s off", o-base[0])
			}
		}
	})
	t.Run("clock-strobe", func(t *testing.T) {
		base := offsets(n2, 1000, 4000)
		var hi, lo int
		for _, o := range offsets(n2, 6010, 7000) {
			switch {
			case near(o, base[0]+10, 1.5):
				hi++
			case near(o, base[0], 1.5):
				lo++
			default:
				t.Errorf("node-2's clock during the strobe is %+.1f s off", o-base[0])
			}
		}
		if hi == 0 || lo == 0 {
			t.Errorf("strobe: %d readings +10 s, %d at 0: want both", hi, lo)
		}
		for _, o := range offsets(n2, 7010, 8000) {
			if !near(o, base[0], 1.5) {
				t.Errorf("node-2's clock after the strobe is %+.1f s off", o-base[0])
			}
		}
	})
	t.Run("clock-skew", func(t *testing.T) {
		freq := regexp.MustCompile(`(-?[0-9]+)`)
		var during, outside []string
		for _, e := range probe(n3, "skew") {
			m := freq.FindString(e.Data)
			switch {
			case in(e, 5010, 8000):
				during = append(during, m)
			case e.Epoch < 5000 || e.Epoch >= 8010:
				outside = append(outside, m)
			}
		}
		for _, v := range during {
			if v != "32768000" { // 500 ppm in adjtimex's 16-bit fixed point
				t.Errorf("node-3's clock frequency during the skew: %s, want 32768000", v)
			}
		}
		for _, v := range outside {
			if v != "0" {
				t.Errorf("node-3's clock frequency outside the skew: %s, want 0", v)
			}
		}
		if len(during) == 0 || len(outside) == 0 {
			t.Errorf("skew readings: %d during, %d outside", len(during), len(outside))
		}
	})
	t.Run("vm-freeze", func(t *testing.T) {
		for _, e := range n2 {
			if in(e, 8501, 10000) {
				t.Errorf("node-2 reported %s %q at epoch %d while its VM was frozen", e.Kind, e.Data, e.Epoch)
				break
			}
		}
		if n := between("node-2", "sidecar", 8500, 10000) + between("node-2", "node-1", 8500, 10000); n != 0 {
			t.Errorf("frozen node-2 sent %d frames", n)
		}
		before, after := offsets(n2, 7010, 8500), offsets(n2, 10010, 11000)
		if len(before) == 0 || len(after) == 0 {
			t.Fatalf("node-2 clock readings before/after the freeze: %d/%d", len(before), len(after))
		}
		// Its wall clock moved on by the 1.5 s it missed; its uptime did not.
		if d := after[0] - before[len(before)-1]; d < 0.9 || d > 2.6 {
			t.Errorf("node-2's wall clock gained %.1f s on its uptime across a 1.5 s freeze", d)
		}
	})
}

// mainProc is the name the agent reports for a node's main process.
func mainProc(t *testing.T, evs []guestEvent) string {
	for _, e := range evs {
		if e.Kind == "start" && strings.Contains(e.Data, "echo beat") {
			return e.Proc
		}
	}
	t.Fatal("no main process start event")
	return ""
}

// TestPowerCut: a power cut loses what was only in the page cache and
// keeps what was synced to the node's disk, and the reboot is as
// deterministic as the rest of the run.
func TestPowerCut(t *testing.T) {
	tools := testenv.Tools(t)
	if tools.PatchedQEMU == "" {
		t.Skip("detvm's patched QEMU is not built; `make setup` builds it")
	}
	s, err := scenario.Load(filepath.Join(testenv.RepoRoot(), "examples/faults/power-cut.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	a := run(t, tools, s, 1)
	var out []string
	for _, e := range readEvents(t, a.RunDir, "node-1") {
		if e.Kind == "stdout" {
			out = append(out, strings.TrimSpace(e.Data))
		}
	}
	if want := []string{"written", "after reboot: kept=synced lost=missing"}; strings.Join(out, "|") != strings.Join(want, "|") {
		t.Errorf("node-1 said %q, want %q", out, want)
	}
	if len(a.Faults) != 1 || a.Faults[0].Kind != "power-cut" {
		t.Errorf("faults applied: %+v", a.Faults)
	}
	t.Run("under-cpu-hog", func(t *testing.T) {
		hog(t)
		if b := run(t, tools, s, 1); b.TraceHash != a.TraceHash {
			_, detail, _, _ := cluster.CompareRuns(a.RunDir, b.RunDir)
			t.Errorf("a run with a power cut diverged: %s", detail)
		}
	})
}

// TestEtcdFaults: a fault schedule drawn from the seed by a policy
// (examples/etcd/faults.yaml) on the etcd cluster running the list-append
// workload (examples/etcd/append.yaml) is reproducible: the same seed gives
// the same faults and the same trace, also under a CPU hog; a different
// seed gives different faults; and the transactions stay serializable.
// (make soak runs it 3 times and seed 2 too: docs/faults-soak.md.)
func TestEtcdFaults(t *testing.T) {
	tools := testenv.Tools(t)
	if _, err := os.Stat("/usr/bin/etcd"); err != nil {
		t.Skip("etcd-server not installed; run `make setup`")
	}
	root := testenv.RepoRoot()
	s, err := scenario.Load(filepath.Join(root, "examples/etcd/append.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	spec, err := faults.Load(filepath.Join(root, "examples/etcd/faults.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	runF := func(seed uint64) (*cluster.Result, string) {
		res, err := cluster.Run(context.Background(), s, tools, cluster.Options{Seed: seed, RunDir: filepath.Join(t.TempDir(), "run"), Faults: spec})
		if err != nil {
			t.Fatal(err)
		}
		log, err := os.ReadFile(filepath.Join(res.RunDir, "faults.log"))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("seed %d: trace %.16s, %d faults, %d ms wall, ended %s", seed, res.TraceHash, len(res.Faults), res.WallMS, res.Ended)
		return res, string(log)
	}
	a, logA := runF(1)
	if len(a.Faults) < 3 {
		t.Fatalf("seed 1 drew %d faults; the policy should give several in 12 s:\n%s", len(a.Faults), logA)
	}
	// etcd's transactions stay serializable through the faults: the
	// list-append workload's history (examples/etcd/append) passes.
	if v := historyVerdict(t, a); v.Status != "passed" {
		t.Errorf("etcd list-append history under faults: %s: %s", v.Status, v.Message)
	}
	t.Logf("etcd list-append history under faults: %s", historyCounts(t, a.RunDir))
	t.Run("under-cpu-hog", func(t *testing.T) {
		hog(t)
		b, logB := runF(1)
		if logB != logA {
			t.Errorf("same seed, different faults:\n%s\nvs\n%s", logA, logB)
		}
		if b.TraceHash != a.TraceHash {
			_, detail, _, _ := cluster.CompareRuns(a.RunDir, b.RunDir)
			t.Errorf("same seed and faults, different traces: %s", detail)
		}
	})
	// Another seed, another schedule: compiled rather than run, which
	// is what decides it (the driver's log lines are the schedule's).
	topo := faults.Topology{Sidecar: -1}
	for i, g := range s.Guests() {
		topo.Names = append(topo.Names, g.Name)
		if g.Sidecar {
			topo.Sidecar = i
		}
	}
	var scheds [2]string
	for i, seed := range []uint64{1, 2} {
		sched, err := spec.Compile(topo, s.Epoch, s.Duration, []faults.Segment{{Seed: seed}})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range sched {
			scheds[i] += f.String() + "\n"
		}
	}
	if scheds[0] == scheds[1] {
		t.Errorf("seeds 1 and 2 drew the same faults:\n%s", scheds[0])
	}
}
