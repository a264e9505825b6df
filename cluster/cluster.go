// Package cluster runs a scenario: it builds each node's image, starts one
// QEMU guest per node and drives them epoch by epoch through their barriers,
// folding what each guest shows into the trace hash. It is the thin,
// side-effecting driver around the pure packages (trace, wire, scenario).
package cluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/detvm/detvm/images"
	"github.com/detvm/detvm/scenario"
	"github.com/detvm/detvm/scheduler"
	"github.com/detvm/detvm/trace"
	"github.com/detvm/detvm/vmm"
	"github.com/detvm/detvm/wire"
)

// Tools are the host files a run needs. Locate fills them in.
type Tools struct {
	QEMU     string
	BIOS     string
	Busybox  string
	Agent    string
	CacheDir string
}

// DefaultCacheDir is $DETVM_CACHE, else $XDG_CACHE_HOME/detvm, else ~/.cache/detvm.
func DefaultCacheDir() string {
	if d := os.Getenv("DETVM_CACHE"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "detvm")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "detvm")
}

// Locate finds the tools, preferring $DETVM_QEMU and $DETVM_AGENT, and the
// agent next to the running executable. Each missing piece is an
// InfraError that says how to get it.
func Locate() (Tools, error) {
	t := Tools{QEMU: os.Getenv("DETVM_QEMU"), BIOS: "/usr/share/qemu/qboot.rom", Busybox: "/bin/busybox", Agent: os.Getenv("DETVM_AGENT"), CacheDir: DefaultCacheDir()}
	if t.QEMU == "" {
		p, err := exec.LookPath("qemu-system-x86_64")
		if err != nil {
			return t, Infra("qemu-system-x86_64 not found; run `make setup` (installs QEMU 10 from bookworm-backports)")
		}
		t.QEMU = p
	} else if _, err := os.Stat(t.QEMU); err != nil {
		return t, Infra("DETVM_QEMU=%s: %v; point it at a qemu-system-x86_64 (QEMU 10 or newer) or unset it", t.QEMU, errors.Unwrap(err))
	}
	if _, err := QEMUVersion(t.QEMU); err != nil {
		return t, err
	}
	if _, err := os.Stat(t.BIOS); err != nil {
		return t, Infra("%s missing; run `make setup`", t.BIOS)
	}
	if _, err := os.Stat(t.Busybox); err != nil {
		return t, Infra("%s missing; run `make setup` (installs busybox-static)", t.Busybox)
	}
	if t.Agent == "" {
		if exe, err := os.Executable(); err == nil {
			t.Agent = filepath.Join(filepath.Dir(exe), "detvm-agent")
		}
	}
	if _, err := os.Stat(t.Agent); err != nil {
		return t, Infra("guest agent %q not found; run `make build` or set DETVM_AGENT", t.Agent)
	}
	return t, nil
}

var qemuVersionRE = regexp.MustCompile(`QEMU emulator version (\d+)\.(\d+)\.(\d+)`)

// QEMUVersion returns qemu's version, or an InfraError if it is older than
// 10.0 (the plugin API and migration features detvm relies on).
func QEMUVersion(qemu string) (string, error) {
	out, err := exec.Command(qemu, "--version").Output()
	if err != nil {
		return "", Infra("%s --version: %v; run `make setup`", qemu, err)
	}
	m := qemuVersionRE.FindStringSubmatch(string(out))
	if m == nil {
		first, _, _ := strings.Cut(string(out), "\n")
		return "", Infra("%s is not QEMU (it says %q); point DETVM_QEMU at qemu-system-x86_64 or unset it", qemu, first)
	}
	if major, _ := strconv.Atoi(m[1]); major < 10 {
		return "", Infra("%s is QEMU %s.%s; detvm needs 10.0 or newer: run `make setup` (installs it from bookworm-backports)", qemu, m[1], m[2])
	}
	return m[1] + "." + m[2] + "." + m[3], nil
}

// Kernel loads the guest kernel from the cache.
func (t Tools) Kernel() (*images.Kernel, error) {
	k, err := images.LoadKernel(filepath.Join(t.CacheDir, "kernel"))
	if err != nil {
		return nil, Infra("%v", err)
	}
	return k, nil
}

// InfraError is a failure of the machinery rather than of the system under
// test: QEMU missing or crashed, a guest that hangs. The CLI exits 4.
type InfraError struct{ Msg string }

func (e *InfraError) Error() string { return e.Msg }

// Infra formats an InfraError.
func Infra(format string, args ...any) error { return &InfraError{Msg: fmt.Sprintf(format, args...)} }

// Options for one run.
type Options struct {
	Seed   uint64
	RunDir string    // created; must not exist or be empty
	Log    io.Writer // progress for a person; nil for none
	// BootTimeout and EpochTimeout bound, in wall time, how long a guest may
	// take to its first and to each next barrier. They are watchdogs only:
	// nothing that happens inside a run depends on them.
	BootTimeout, EpochTimeout time.Duration
	// NoBarrier releases each guest as soon as it reaches a barrier, before
	// reading its page: free-running guests, for showing that the
	// determinism check can fail. Never for real runs.
	NoBarrier bool
}

// Verdict is the outcome of one property.
type Verdict struct {
	Property string `json:"property"`
	Status   string `json:"status"` // passed, failed, unknown
	Message  string `json:"message,omitempty"`
}

// Result is what a run produced. JSON times carry their unit in the name.
type Result struct {
	Scenario   string            `json:"scenario"`
	Seed       uint64            `json:"seed"`
	TraceHash  string            `json:"trace_hash"`
	RunDir     string            `json:"run_dir"`
	Epochs     uint64            `json:"epochs"`
	VirtualNS  uint64            `json:"virtual_ns"`
	WallMS     int64             `json:"wall_ms"`
	BootWallMS int64             `json:"boot_wall_ms"` // QEMU start → every agent at its first barrier
	ReadyNS    uint64            `json:"ready_virtual_ns"`
	Ended      string            `json:"ended"` // "all-exited" or "duration"
	Network    scheduler.Stats   `json:"network"`
	Perf       Perf              `json:"perf"`
	DroppedRX  uint64            `json:"network_dropped_rx"` // frames that did not fit a receive region
	ExitCodes  map[string]int    `json:"exit_codes"`
	Verdicts   []Verdict         `json:"verdicts"`
	Images     map[string]string `json:"images"` // node → initramfs sha256
	Kernel     string            `json:"kernel"` // vmlinux sha256
}

// Perf is wall-clock accounting of the epoch loop after boot, for
// benchmarks. It is measured, never used: nothing in a run depends on it.
type Perf struct {
	EpochWallUS    float64 `json:"epoch_wall_us_mean"` // wall time per epoch
	HeldUS         float64 `json:"held_us_mean"`       // per epoch, last guest's arrival to release: the controller's share
	VirtualPerWall float64 `json:"virtual_per_wall"`   // virtual seconds per wall second, after boot
}

// Failed reports whether any property failed.
func (r *Result) Failed() bool {
	for _, v := range r.Verdicts {
		if v.Status == "failed" {
			return true
		}
	}
	return false
}

type node struct {
	spec    *scenario.Node
	dir     string
	cfg     vmm.Config
	m       *vmm.Machine
	console *os.File // read side of the console file, at the last barrier's offset
	events  *os.File
	out     *bufio.Writer
	outF    *os.File
	exits   map[string]int
}

// Run executes s once and returns its result. Errors of the machinery are
// *InfraError; the system under test failing is a Result with failed verdicts.
func Run(ctx context.Context, s *scenario.Scenario, tools Tools, opt Options) (res *Result, err error) {
	wallStart := time.Now()
	if opt.BootTimeout == 0 {
		opt.BootTimeout = 3 * time.Minute
	}
	if opt.EpochTimeout == 0 {
		opt.EpochTimeout = time.Minute
	}
	logf := func(format string, args ...any) {
		if opt.Log != nil {
			fmt.Fprintf(opt.Log, "detvm: "+format+"\n", args...)
		}
	}
	if err := s.Complete(); err != nil {
		return nil, err
	}
	kern, err := tools.Kernel()
	if err != nil {
		return nil, err
	}
	plugin, err := vmm.BuildPlugin(filepath.Join(tools.CacheDir, "plugin"))
	if err != nil {
		return nil, Infra("%v", err)
	}
	if err := os.MkdirAll(opt.RunDir, 0o755); err != nil {
		return nil, err
	}
	if s.Path != "" {
		if b, err := os.ReadFile(s.Path); err == nil {
			_ = os.WriteFile(filepath.Join(opt.RunDir, "scenario.yaml"), b, 0o644)
		}
	}
	res = &Result{Scenario: s.Name, Seed: opt.Seed, RunDir: opt.RunDir, ExitCodes: map[string]int{}, Images: map[string]string{}, Kernel: kern.SHA256}

	guests := s.Guests()
	nodes := make([]*node, len(guests))
	defer func() {
		for _, n := range nodes {
			if n == nil {
				continue
			}
			if n.m != nil {
				n.m.Kill()
			}
			for _, f := range []*os.File{n.console, n.events} {
				if f != nil {
					f.Close()
				}
			}
			if n.out != nil {
				n.out.Flush()
				n.outF.Close()
			}
			os.Remove(filepath.Join(n.dir, "shared")) // guest memory, not a result
		}
	}()
	for i, spec := range guests {
		path, sum, err := BuildImage(s, spec, kern, tools)
		if err != nil {
			return nil, err
		}
		res.Images[spec.Name] = sum
		n := &node{spec: spec, dir: filepath.Join(opt.RunDir, spec.Name), exits: map[string]int{}}
		nodes[i] = n
		if err := os.MkdirAll(n.dir, 0o755); err != nil {
			return nil, err
		}
		n.cfg = vmm.Config{
			Name: spec.Name, QEMU: tools.QEMU, BIOS: tools.BIOS, Kernel: kern.Vmlinux, Initrd: path,
			MemoryMiB: spec.Memory, Plugin: plugin,
			Shared: filepath.Join(n.dir, "shared"), Console: filepath.Join(n.dir, "console.log"),
		}
		if err := os.WriteFile(filepath.Join(n.dir, "qemu.argv"), []byte(strings.Join(n.cfg.CommandLine(), "\n")+"\n"), 0o644); err != nil {
			return nil, err
		}
		if n.events, err = os.Create(filepath.Join(n.dir, "events.jsonl")); err != nil {
			return nil, err
		}
		if n.outF, err = os.Create(filepath.Join(n.dir, "output.log")); err != nil {
			return nil, err
		}
		n.out = bufio.NewWriter(n.outF)
	}

	addrs := make([]netip.Addr, len(guests))
	for i, g := range guests {
		addrs[i] = g.Addr
	}
	sw := scheduler.NewSwitch(addrs)
	pcapF, err := os.Create(filepath.Join(opt.RunDir, "network.pcap"))
	if err != nil {
		return nil, err
	}
	defer pcapF.Close()
	pcapW := bufio.NewWriter(pcapF)
	defer pcapW.Flush()
	pcap, err := scheduler.NewPCAPWriter(pcapW, uint64(s.Epoch))
	if err != nil {
		return nil, err
	}

	logf("booting %d guest(s)", len(nodes))
	bootStart := time.Now()
	for _, n := range nodes {
		m, err := vmm.Start(ctx, n.cfg)
		if err != nil {
			return nil, Infra("%v", err)
		}
		n.m = m
		if n.console, err = os.Open(n.cfg.Console); err != nil {
			return nil, err
		}
	}

	var chain trace.Chain
	traceF, err := os.Create(filepath.Join(opt.RunDir, "trace.log"))
	if err != nil {
		return nil, err
	}
	defer traceF.Close()
	tw := bufio.NewWriter(traceF)
	defer tw.Flush()

	epochNS := uint64(s.Epoch)
	maxEpochs := uint64(s.Duration) / epochNS
	// A run whose guests only run daemons waits for nothing: it lasts its
	// duration, rather than being "all exited" at once.
	waitsFor := false
	for _, g := range guests {
		waitsFor = waitsFor || (g.Binary != "" && !g.Daemon) || len(g.Commands) > 0
	}
	lastProgress := time.Now()
	var loopStart time.Time
	var held time.Duration
	for epoch := uint64(0); ; epoch++ {
		timeout := opt.EpochTimeout
		if epoch == 0 {
			timeout = opt.BootTimeout
		}
		seen := make([]trace.Guest, len(nodes))
		allDone := true
		for i, n := range nodes {
			if ctx.Err() != nil {
				return nil, Infra("interrupted at epoch %d; what the run produced so far is in %s", epoch, opt.RunDir)
			}
			if err := n.m.WaitBarrier(timeout); err != nil {
				return nil, Infra("%s", n.hangReport(epoch, err))
			}
			if opt.NoBarrier && epoch > 0 {
				// Debug mode: let the guest run on while we read its page.
				if err := n.m.Release(); err != nil {
					return nil, Infra("%v", err)
				}
			}
			g, done, err := n.collect(epoch)
			if opt.NoBarrier && err != nil {
				err = nil // torn reads are what this mode is for
			}
			if err != nil {
				return nil, Infra("%s: epoch %d: %v", n.spec.Name, epoch, err)
			}
			frames, err := wire.SplitFrames(g.Net)
			if err != nil {
				return nil, Infra("%s: epoch %d: %v", n.spec.Name, epoch, err)
			}
			sw.Send(epoch, i, frames)
			seen[i] = g
			allDone = allDone && done
		}
		allHeld := time.Now()
		// Frames sent during this epoch reach their destinations at the
		// start of the next one, while every guest is still held.
		due := sw.Deliver(epoch + 1)
		if err := pcap.Write(due); err != nil {
			return nil, err
		}
		for _, f := range due {
			if nodes[f.Dst].m.Page().AppendRX(wire.AppendFrame(nil, f.Data)) == 0 {
				res.DroppedRX++
			}
		}
		chain.Add(epoch, seen)
		changed := epoch == 0
		for _, g := range seen {
			changed = changed || len(g.Console) > 0 || len(g.Events) > 0 || len(g.Net) > 0
		}
		if epoch == 0 {
			res.BootWallMS = time.Since(bootStart).Milliseconds()
			lastProgress = time.Now()
			res.ReadyNS = seen[0].MonoNS
			logf("all agents ready: %d ms wall, %.3f s virtual", res.BootWallMS, float64(res.ReadyNS)/1e9)
			for _, n := range nodes {
				n.m.Page().SetSeed(opt.Seed)
			}
		}
		res.Epochs = epoch + 1
		res.VirtualNS = epoch * epochNS
		switch {
		case epoch > 0 && allDone && waitsFor:
			res.Ended = "all-exited"
		case epoch >= maxEpochs:
			res.Ended = "duration"
		}
		if changed || res.Ended != "" {
			// Per-guest digests only for the lines written: most epochs
			// of a quiet cluster have nothing to record.
			line := trace.Line{Epoch: epoch, Chain: chain.Sum()}
			for _, g := range seen {
				line.Guests = append(line.Guests, g.Name+"="+g.Digest())
			}
			if res.Ended != "" {
				line.Comment = "end"
			}
			fmt.Fprintln(tw, line.Format())
		}
		if res.Ended != "" {
			break
		}
		if opt.Log != nil && time.Since(lastProgress) > 5*time.Second {
			lastProgress = time.Now()
			logf("epoch %d/%d (%.2f s virtual)", epoch, maxEpochs, float64(epoch*epochNS)/1e9)
		}
		for _, n := range nodes {
			n.m.Page().SetEpoch(epoch + 1)
			if opt.NoBarrier && epoch > 0 {
				continue // released already
			}
			if err := n.m.Release(); err != nil {
				return nil, Infra("%v", err)
			}
		}
		if epoch == 0 {
			loopStart = time.Now()
		} else {
			held += time.Since(allHeld)
		}
	}
	if ep := res.Epochs - 1; ep > 0 {
		wall := time.Since(loopStart)
		res.Perf = Perf{
			EpochWallUS:    float64(wall.Microseconds()) / float64(ep),
			HeldUS:         float64(held.Microseconds()) / float64(ep),
			VirtualPerWall: float64(ep*epochNS) / float64(wall.Nanoseconds()),
		}
	}
	res.TraceHash = chain.Sum()
	res.Network = sw.Stats()
	res.WallMS = time.Since(wallStart).Milliseconds()
	for _, n := range nodes {
		n.verdicts(res)
	}
	b, _ := json.MarshalIndent(res, "", "  ")
	if err := os.WriteFile(filepath.Join(opt.RunDir, "result.json"), append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	return res, nil
}

// BuildImage builds a node's initramfs into the content-addressed image
// cache and returns its path and sha256.
func BuildImage(s *scenario.Scenario, n *scenario.Node, kern *images.Kernel, tools Tools) (path, sum string, err error) {
	img, err := nodeImage(s, n, kern, tools.Agent, tools.Busybox)
	if err != nil {
		return "", "", fmt.Errorf("node %s: image: %w", n.Name, err)
	}
	b, err := img.Bytes()
	if err != nil {
		return "", "", fmt.Errorf("node %s: image: %w", n.Name, err)
	}
	return images.Store(filepath.Join(tools.CacheDir, "images"), "cpio", b)
}

// collect reads what a held guest produced since its last barrier.
func (n *node) collect(epoch uint64) (trace.Guest, bool, error) {
	p := n.m.Page()
	if epoch == 0 && !p.Valid() {
		return trace.Guest{}, false, errors.New("agent did not initialise the shared page")
	}
	console, err := io.ReadAll(n.console)
	if err != nil {
		return trace.Guest{}, false, err
	}
	raw, err := p.TakeOut()
	if err != nil {
		return trace.Guest{}, false, err
	}
	evs, err := wire.DecodeEvents(raw)
	if err != nil {
		return trace.Guest{}, false, err
	}
	for _, e := range evs {
		n.record(epoch, e)
	}
	tx, err := p.TakeTX()
	if err != nil {
		return trace.Guest{}, false, err
	}
	return trace.Guest{Name: n.spec.Name, MonoNS: p.MonoNS(), Console: console, Events: raw, Net: tx}, p.State() == wire.StateDone, nil
}

type eventJSON struct {
	Epoch  uint64 `json:"epoch"`
	MonoNS uint64 `json:"t_ns"`
	Kind   string `json:"kind"`
	Proc   string `json:"proc,omitempty"`
	Code   *int32 `json:"code,omitempty"`
	Data   string `json:"data,omitempty"`
}

func (n *node) record(epoch uint64, e wire.Event) {
	j := eventJSON{Epoch: epoch, MonoNS: e.MonoNS, Kind: e.Kind.String(), Proc: e.Proc, Data: string(e.Data)}
	if e.Kind == wire.KindExit {
		code := e.Code
		j.Code = &code
		n.exits[e.Proc] = int(e.Code)
	}
	b, _ := json.Marshal(j)
	n.events.Write(append(b, '\n'))
	data := strings.TrimRight(string(e.Data), "\n")
	who := e.Proc
	switch e.Kind {
	case wire.KindLog:
		who = "agent"
	case wire.KindStdout, wire.KindStderr:
		who += "/" + e.Kind.String()
	case wire.KindExit:
		data = fmt.Sprintf("exited with %d", e.Code)
	case wire.KindStart:
		data = "started " + data
	}
	fmt.Fprintf(n.out, "[%5d.%06d] %s: %s\n", e.MonoNS/1e9, e.MonoNS%1e9/1e3, who, data)
}

// verdicts turns exits into properties: every waited-for process must exit
// 0, and a daemon must still be running at the end.
func (n *node) verdicts(res *Result) {
	type proc struct {
		name   string
		daemon bool
	}
	var procs []proc
	if n.spec.Binary != "" {
		procs = append(procs, proc{mainName(n.spec), n.spec.Daemon})
	}
	for _, c := range n.spec.Commands {
		procs = append(procs, proc{c.Name, false})
	}
	for _, p := range procs {
		key := n.spec.Name + "/" + p.name
		code, exited := n.exits[p.name]
		if exited {
			res.ExitCodes[key] = code
		}
		v := Verdict{Property: "exit:" + key, Status: "passed"}
		switch {
		case p.daemon && exited:
			v.Status, v.Message = "failed", fmt.Sprintf("daemon exited with %d before the end of the run", code)
		case p.daemon:
			v.Message = "running at the end"
		case !exited:
			v.Status, v.Message = "unknown", "still running when the run ended"
		case code != 0:
			v.Status, v.Message = "failed", fmt.Sprintf("exited with %d", code)
		}
		res.Verdicts = append(res.Verdicts, v)
	}
	sort.SliceStable(res.Verdicts, func(i, j int) bool { return res.Verdicts[i].Property < res.Verdicts[j].Property })
}

// hangReport says which node failed, at which epoch, with its last console lines.
func (n *node) hangReport(epoch uint64, err error) string {
	b, _ := os.ReadFile(filepath.Join(n.dir, "console.log"))
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	what := "did not reach its barrier"
	if epoch == 0 {
		what = "did not finish booting"
	}
	var tail bytes.Buffer
	for _, l := range lines {
		tail.WriteString("\n    | " + l)
	}
	return fmt.Sprintf("node %s %s (epoch %d): %v; last console lines (%s):%s", n.spec.Name, what, epoch, err, filepath.Join(n.dir, "console.log"), tail.String())
}
