package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/detvm/detvm/cluster"
	"github.com/detvm/detvm/internal/testenv"
	"github.com/detvm/detvm/scenario"
)

func run(t *testing.T, tools cluster.Tools, s *scenario.Scenario, seed uint64) *cluster.Result {
	t.Helper()
	res, err := cluster.Run(context.Background(), s, tools, cluster.Options{Seed: seed, RunDir: filepath.Join(t.TempDir(), "run")})
	if err != nil {
		t.Fatalf("run %s seed %d: %v", s.Name, seed, err)
	}
	t.Logf("%s seed %d: trace %s, %d epochs, %d ms wall (boot %d ms, warm %v)", s.Name, seed, res.TraceHash[:16], res.Epochs, res.WallMS, res.BootWallMS, res.WarmStart)
	return res
}

// hog keeps both host cores busy for the duration of the test, so that
// determinism is checked under a different host schedule.
func hog(t *testing.T) {
	for i := 0; i < 2; i++ {
		cmd := exec.Command("sh", "-c", "while :; do :; done")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
}

// TestHelloDeterministic is the foundation's promise on a short scenario:
// three runs with seed 1 (one of them under a host CPU hog) give the same
// trace hash; seed 2 gives another. The guest program prints urandom,
// getrandom, clocks, TSC and a thread race, so the check can fail.
func TestHelloDeterministic(t *testing.T) {
	tools := testenv.Tools(t)
	s, err := scenario.Load(testenv.Example(t, "hello"))
	if err != nil {
		t.Fatal(err)
	}
	// The first run boots (--cold); the second boots or starts warm and
	// leaves a warm start cached; the third, under a hog, starts warm. All
	// must agree: a warm start is invisible to the guest.
	first, err := cluster.Run(context.Background(), s, tools, cluster.Options{Seed: 1, RunDir: filepath.Join(t.TempDir(), "run"), Cold: true})
	if err != nil {
		t.Fatal(err)
	}
	if first.WarmStart || first.Failed() || first.Ended != "all-exited" {
		t.Fatalf("hello did not pass cold: warm %v, ended %s, verdicts %+v", first.WarmStart, first.Ended, first.Verdicts)
	}
	out, err := os.ReadFile(filepath.Join(first.RunDir, "node-1", "output.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"rand/stdout: urandom", "rand/stdout: race", "od: exited with 0", "date/stdout: 2026-01-01"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output.log lacks %q:\n%s", want, out)
		}
	}
	if got := run(t, tools, s, 1); got.TraceHash != first.TraceHash {
		t.Errorf("seed 1 run 2: trace %s, run 1 had %s", got.TraceHash, first.TraceHash)
	}
	t.Run("under-cpu-hog", func(t *testing.T) {
		hog(t)
		got := run(t, tools, s, 1)
		if got.TraceHash != first.TraceHash {
			t.Errorf("seed 1 under hog: trace %s, run 1 had %s", got.TraceHash, first.TraceHash)
		}
		if !got.WarmStart {
			t.Errorf("third run did not start warm")
		}
	})
	other := run(t, tools, s, 2)
	if other.TraceHash == first.TraceHash {
		t.Errorf("seed 2 gave the same trace as seed 1: the seed does not reach the guest")
	}
}

// TestEtcdSingle runs Debian's etcd and etcdctl, unmodified, twice.
func TestEtcdSingle(t *testing.T) {
	tools := testenv.Tools(t)
	if _, err := os.Stat("/usr/bin/etcd"); err != nil {
		t.Skip("etcd-server not installed; run `make setup`")
	}
	s, err := scenario.Load(testenv.Example(t, "etcd-single"))
	if err != nil {
		t.Fatal(err)
	}
	a := run(t, tools, s, 1)
	if a.Failed() || a.ExitCodes["node-1/get"] != 0 {
		t.Fatalf("etcd-single failed: %+v", a.Verdicts)
	}
	out, _ := os.ReadFile(filepath.Join(a.RunDir, "node-1", "output.log"))
	if !strings.Contains(string(out), "get/stdout: hello-from-detvm") {
		t.Fatalf("etcdctl get did not read the value back:\n%s", out)
	}
	if b := run(t, tools, s, 1); b.TraceHash != a.TraceHash {
		t.Errorf("etcd-single not deterministic: %s vs %s", a.TraceHash, b.TraceHash)
	}
}

// TestImageReproducible: the same scenario gives the same initramfs hash.
func TestImageReproducible(t *testing.T) {
	tools := testenv.Tools(t)
	s, err := scenario.Load(testenv.Example(t, "hello"))
	if err != nil {
		t.Fatal(err)
	}
	kern, err := tools.Kernel()
	if err != nil {
		t.Fatal(err)
	}
	tools.CacheDir = t.TempDir()
	_, a, err := cluster.BuildImage(s, &s.Nodes[0], kern, tools)
	if err != nil {
		t.Fatal(err)
	}
	tools.CacheDir = t.TempDir()
	_, b, err := cluster.BuildImage(s, &s.Nodes[0], kern, tools)
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatalf("image hash differs between builds: %s vs %s", a, b)
	}
}

// TestWatchdog: a guest that never reaches its first barrier (here busybox
// init instead of the agent) ends the run with an InfraError that names the
// node and shows its console, and nothing keeps running.
func TestWatchdog(t *testing.T) {
	tools := testenv.Tools(t)
	tools.Agent = tools.Busybox
	s := &scenario.Scenario{Name: "hang", Seed: 1, Duration: 1e9, Epoch: 1e6,
		Nodes: []scenario.Node{{Name: "node-1", Binary: tools.Busybox, Memory: 128}}}
	dir := t.TempDir()
	_, err := cluster.Run(context.Background(), s, tools, cluster.Options{Seed: 1, RunDir: dir, BootTimeout: 20e9})
	var ie *cluster.InfraError
	if !errors.As(err, &ie) {
		t.Fatalf("want an InfraError, got %v", err)
	}
	for _, want := range []string{"node node-1 did not finish booting (epoch 0)", "console.log"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("report lacks %q:\n%v", want, err)
		}
	}
	// The run dir is on QEMU's command line (the console path).
	if out, _ := exec.Command("pgrep", "-f", dir).Output(); len(out) > 0 {
		t.Errorf("QEMU still running after the watchdog: %s", out)
	}
}

// TestEtcdCluster: Debian's etcd as a 3-node cluster plus a sidecar doing
// puts, gets and txns over real TCP. Same seed ⇒ same trace, also under a
// host CPU hog; another seed ⇒ another trace; the network capture holds
// the TCP handshakes between members, with virtual timestamps.
func TestEtcdCluster(t *testing.T) {
	tools := testenv.Tools(t)
	if _, err := os.Stat("/usr/bin/etcd"); err != nil {
		t.Skip("etcd-server not installed; run `make setup`")
	}
	s, err := scenario.Load(filepath.Join(testenv.RepoRoot(), "examples/etcd/short.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// The first run also takes a snapshot mid-workload: taking it must be
	// invisible (the hog run below, which takes none, must match).
	a, err := cluster.Run(context.Background(), s, tools, cluster.Options{Seed: 1, RunDir: filepath.Join(t.TempDir(), "run"), SnapshotEvery: 2500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("seed 1 with snapshot: trace %s, %d epochs, %d ms wall, snapshots %+v", a.TraceHash[:16], a.Epochs, a.WallMS, a.Snapshots)
	if a.Failed() || a.Ended != "all-exited" {
		t.Fatalf("etcd cluster failed (ended %s): %+v", a.Ended, a.Verdicts)
	}
	// short.yaml names no idle mode: it runs the default, warp with
	// detvm's patched QEMU (the CI machine builds it), else spin.
	if want := tools.IdleMode(&scenario.Scenario{}); a.Idle != want || s.Idle != want {
		t.Errorf("idle mode: result %q, scenario %q; want the default %q", a.Idle, s.Idle, want)
	}
	// The register workload's history (examples/etcd/register) is
	// linearizable on a fault-free run.
	if v := historyVerdict(t, a); v.Status != "passed" {
		t.Errorf("etcd register history: %s: %s", v.Status, v.Message)
	}
	t.Logf("etcd register history: %s", historyCounts(t, a.RunDir))
	// SDK assertions from Go (the load generator's summary) and from the
	// shell (health.sh, through detvm-sdk) are verdicts of the run.
	for _, want := range []string{"a request succeeds", "most requests succeed", "every member is healthy after the load"} {
		if v := verdict(a, want); v == nil || v.Status != "passed" {
			t.Errorf("verdict %q: %+v; want passed (verdicts %+v)", want, v, a.Verdicts)
		}
	}
	if len(a.Snapshots) != 1 {
		t.Fatalf("took %d snapshots, want 1 at 2.5 s", len(a.Snapshots))
	}
	if a.Network.Delivered == 0 || a.Network.Delivered != a.Network.Sent {
		t.Errorf("network stats %+v: want every frame delivered", a.Network)
	}
	syns := peerSYNs(t, filepath.Join(a.RunDir, "network.pcap"))
	for _, want := range []string{"10.89.0.2>10.89.0.3:2380", "10.89.0.5>10.89.0.2:2379"} {
		if !syns[want] {
			t.Errorf("no TCP SYN %s in network.pcap (have %v)", want, syns)
		}
	}
	t.Run("under-cpu-hog", func(t *testing.T) {
		hog(t)
		if b := run(t, tools, s, 1); b.TraceHash != a.TraceHash {
			_, detail, _, _ := cluster.CompareRuns(a.RunDir, b.RunDir)
			t.Errorf("etcd cluster not deterministic under load: %s vs %s (%s)", a.TraceHash, b.TraceHash, detail)
		}
	})
	if c := run(t, tools, s, 2); c.TraceHash == a.TraceHash {
		t.Errorf("seed 2 gave the same trace as seed 1")
	}
	t.Run("snapshot", func(t *testing.T) { etcdFromSnapshot(t, tools, s, a) })
}

// etcdFromSnapshot: continuing from run a's snapshot with a's seed gives
// a's trace, epoch by epoch, and a's trace hash (the chain is carried in
// the snapshot); branching with another seed gives another trace, the
// same one each time.
func etcdFromSnapshot(t *testing.T, tools cluster.Tools, s *scenario.Scenario, a *cluster.Result) {
	snap := a.Snapshots[0]
	store := filepath.Join(a.RunDir, "snapshots")
	cont := func(name string, branch uint64) *cluster.Result {
		t.Helper()
		opt := cluster.Options{RunDir: filepath.Join(t.TempDir(), name), Store: store, From: snap.ID[:8], Branch: branch != 0, BranchSeed: branch}
		res, err := cluster.Run(context.Background(), s, tools, opt)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Logf("%s: trace %s, restore %d ms, %d ms wall, segments %+v", name, res.TraceHash[:16], res.RestoreMS, res.WallMS, res.Segments)
		if res.FromEpoch != snap.Epoch {
			t.Fatalf("%s: from_epoch %d, want %d", name, res.FromEpoch, snap.Epoch)
		}
		return res
	}
	c := cont("continue", 0)
	if c.TraceHash != a.TraceHash {
		_, detail, _, _ := cluster.CompareRuns(a.RunDir, c.RunDir)
		t.Errorf("continuation from %s: trace %s, want the uninterrupted run's %s (%s)", snap.ID, c.TraceHash, a.TraceHash, detail)
	}
	if _, _, same, err := cluster.CompareRuns(a.RunDir, c.RunDir); err != nil || !same {
		t.Errorf("continuation's trace.log differs from the run's after epoch %d (err %v)", snap.Epoch, err)
	}
	if c.Failed() {
		t.Errorf("continuation failed: %+v", c.Verdicts)
	}
	b1, b2 := cont("branch-9a", 9), cont("branch-9b", 9)
	if b1.TraceHash == a.TraceHash {
		t.Errorf("branch with seed 9 gave the original trace")
	}
	if b1.TraceHash != b2.TraceHash {
		_, detail, _, _ := cluster.CompareRuns(b1.RunDir, b2.RunDir)
		t.Errorf("two branches with seed 9 differ: %s", detail)
	}
	if want := []uint64{1, 9}; len(b1.Segments) != 2 || b1.Segments[0].Seed != want[0] || b1.Segments[1].Seed != want[1] || b1.Segments[1].FromEpoch != snap.Epoch+1 {
		t.Errorf("branch segments %+v, want seed 1 from 0 and seed 9 from %d", b1.Segments, snap.Epoch+1)
	}
}

// peerSYNs returns "src>dst:port" for every TCP SYN (without ACK) in a pcap.
func peerSYNs(t *testing.T, path string) map[string]bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != layers.LinkTypeRaw {
		t.Fatalf("pcap link type %v, want raw IP", r.LinkType())
	}
	out := map[string]bool{}
	var last time.Time
	for {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		if ci.Timestamp.Before(time.Unix(0, 0)) || ci.Timestamp.After(time.Unix(3600, 0)) {
			t.Fatalf("timestamp %v is not virtual time", ci.Timestamp)
		}
		last = ci.Timestamp
		p := gopacket.NewPacket(data, layers.LayerTypeIPv4, gopacket.Default)
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if ip != nil && tcp != nil && tcp.SYN && !tcp.ACK {
			out[fmt.Sprintf("%s>%s:%d", ip.SrcIP, ip.DstIP, tcp.DstPort)] = true
		}
	}
	if last.IsZero() {
		t.Fatal("empty pcap")
	}
	return out
}

// TestRedisReplication: a second protocol (redis primary → replica).
func TestRedisReplication(t *testing.T) {
	tools := testenv.Tools(t)
	if _, err := os.Stat("/usr/bin/redis-server"); err != nil {
		t.Skip("redis-server not installed; run `make setup`")
	}
	s, err := scenario.Load(testenv.Example(t, "redis"))
	if err != nil {
		t.Fatal(err)
	}
	a := run(t, tools, s, 1)
	if a.Failed() || a.ExitCodes["sidecar/workload"] != 0 {
		t.Fatalf("redis failed: %+v", a.Verdicts)
	}
	if b := run(t, tools, s, 1); b.TraceHash != a.TraceHash {
		_, detail, _, _ := cluster.CompareRuns(a.RunDir, b.RunDir)
		t.Errorf("redis not deterministic: %s vs %s (%s)", a.TraceHash, b.TraceHash, detail)
	}
}

// TestNoBarrierDiverges proves the determinism check can fail: with the
// barriers open, two runs of the same seed differ, and CompareRuns says
// where. In idle mode spin: there the agent's own barrier reads the epoch
// the controller writes while the guest runs, which moves its next barrier.
// Guests QEMU holds (warp) stop at the same instants with barriers open or
// not, so hello, whose agent publishes little, diverges there only by luck.
func TestNoBarrierDiverges(t *testing.T) {
	tools := testenv.Tools(t)
	s, err := scenario.Load(testenv.Example(t, "hello"))
	if err != nil {
		t.Fatal(err)
	}
	s.Idle = scenario.IdleSpin
	var dirs []string
	var hashes []string
	for i := 0; i < 2; i++ {
		dir := filepath.Join(t.TempDir(), "run")
		res, err := cluster.Run(context.Background(), s, tools, cluster.Options{Seed: 1, RunDir: dir, NoBarrier: true})
		if err != nil {
			t.Fatal(err)
		}
		dirs, hashes = append(dirs, dir), append(hashes, res.TraceHash)
	}
	if hashes[0] == hashes[1] {
		t.Fatalf("free-running guests gave identical traces twice (%s): the check would not notice nondeterminism", hashes[0])
	}
	d, _, same, err := cluster.CompareRuns(dirs[0], dirs[1])
	if err != nil || same {
		t.Fatalf("CompareRuns = same %v, err %v", same, err)
	}
	t.Logf("diverged at epoch %d: %s", d.Epoch, d.What)
}

// TestDaemonsOnlyRunsToDuration: with nothing to wait for, a run lasts its
// duration; the daemon is still running at the end, which passes.
func TestDaemonsOnlyRunsToDuration(t *testing.T) {
	tools := testenv.Tools(t)
	s := &scenario.Scenario{Name: "idle", Seed: 1, Duration: 300 * time.Millisecond,
		Nodes: []scenario.Node{{Name: "node-1", Binary: tools.Busybox, Args: []string{"sleep", "1000"}, Daemon: true}}}
	res := run(t, tools, s, 1)
	if res.Ended != "duration" || res.VirtualNS != 300e6 || res.Failed() {
		t.Fatalf("ended %q after %d ns, verdicts %+v; want the full 300 ms and a pass", res.Ended, res.VirtualNS, res.Verdicts)
	}
}

// verdict returns res's verdict on property, nil if it has none.
func verdict(res *cluster.Result, property string) *cluster.Verdict {
	for i := range res.Verdicts {
		if res.Verdicts[i].Property == property {
			return &res.Verdicts[i]
		}
	}
	return nil
}
