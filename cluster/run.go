package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/detvm/detvm/images"
	"github.com/detvm/detvm/scenario"
	"github.com/detvm/detvm/scheduler"
	"github.com/detvm/detvm/snapshot"
	"github.com/detvm/detvm/trace"
	"github.com/detvm/detvm/vmm"
	"github.com/detvm/detvm/wire"
)

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
	props   *propsSink // the run's SDK sink, shared by every node (props.go)

	// atBarrier: the guest's arrival at this round's barrier was already
	// taken (by bootRounds), so the loop must not wait for another.
	atBarrier bool
	// busy: the guest was held inside a page access (wire.Page.Enter), so
	// this round leaves its regions alone.
	busy bool
	// rxq holds frames due to the guest that wait for a round in which its
	// page is not busy.
	rxq [][]byte
	// wake: release the guest with Machine.Wake rather than Release, since
	// the page has something for its agent (hold mode).
	wake bool
}

// runner is one run in progress: the guests, the switch and the trace.
type runner struct {
	s     *scenario.Scenario
	tools Tools
	opt   Options
	res   *Result
	logf  func(format string, args ...any)

	kern   *images.Kernel
	plugin string
	hold   bool // QEMU holds the guests (idle mode warp); else the plugin's barrier
	qemuV  string
	nodes  []*node
	sw     *scheduler.Switch
	pcap   *scheduler.PCAPWriter
	pcapW  *bufio.Writer
	pcapF  *os.File
	traceW *bufio.Writer
	traceF *os.File
	chain  trace.Chain

	store      *snapshot.Store // opened on first use
	parent     string          // the last snapshot this run took or started from
	startEpoch uint64          // the first barrier the loop waits for
	branchAt   uint64          // epoch at whose barrier the branch seed is written; 0: none
	branch     uint64          // the branch seed the pages carry
	lastLine   string          // the last line written to trace.log
	warmSave   string          // warm-start key to save the cluster under at epoch 0
	chain0     trace.Chain     // the empty chain, for stopAll

	fd          *faultDriver           // nil: no faults
	held        map[int]hold           // nodes kept in their barrier by a node fault (the driver's map)
	rebooting   map[int]bool           // power-cut nodes booting afresh, not yet at a barrier
	pendingCmds map[int][]wire.Command // commands for nodes that cannot take them yet
	faultLog    *bufio.Writer
	faultLogF   *os.File

	props *propsSink // SDK messages: history, property verdicts (props.go)
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
	if opt.Store == "" {
		opt.Store = filepath.Join(opt.RunDir, "snapshots")
	}
	r := &runner{s: s, tools: tools, opt: opt}
	r.logf = func(format string, args ...any) {
		if opt.Log != nil {
			fmt.Fprintf(opt.Log, "detvm: "+format+"\n", args...)
		}
	}
	defer r.close()
	if err := r.prepare(); err != nil {
		return nil, err
	}
	switch {
	case opt.From != "":
		err = r.restore(ctx)
	default:
		r.res.Segments = []snapshot.Segment{{FromEpoch: 0, Seed: opt.Seed}}
		err = r.warmOrBoot(ctx)
	}
	if err != nil {
		return nil, err
	}
	if err := r.startFaults(); err != nil {
		return nil, err
	}
	if err := r.loop(ctx); err != nil {
		return nil, err
	}
	res = r.res
	res.TraceHash = r.chain.Sum()
	res.Network = r.sw.Stats()
	res.WallMS = time.Since(wallStart).Milliseconds()
	for _, n := range r.nodes {
		n.verdicts(res)
	}
	r.props.verdicts(res) // after the exits, sorted by property
	if err := r.props.flush(); err != nil {
		return nil, err
	}
	r.checkHistory() // check: in the scenario (check.go)
	b, _ := json.MarshalIndent(res, "", "  ")
	if err := os.WriteFile(filepath.Join(opt.RunDir, "result.json"), append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	return res, nil
}

// prepare builds the images and creates the run directory, the switch and
// the output files. Nothing is started yet.
func (r *runner) prepare() error {
	s, opt := r.s, r.opt
	if err := s.Complete(); err != nil {
		return err
	}
	var err error
	if opt.Kernel != "" {
		r.kern, err = KernelFile(opt.Kernel)
	} else {
		r.kern, err = r.tools.Kernel()
	}
	if err != nil {
		return err
	}
	if s.Idle == "" {
		if s.Idle = r.tools.IdleMode(s); s.Idle == scenario.IdleSpin {
			r.logf("%s", r.tools.SpinWarning())
		}
	}
	if r.tools.QEMU, err = r.tools.QEMUFor(s.Idle); err != nil {
		return err
	}
	if r.qemuV, err = QEMUVersion(r.tools.QEMU); err != nil {
		return err
	}
	r.hold = s.Idle == scenario.IdleWarp
	if !r.hold {
		if r.plugin, err = vmm.BuildPlugin(filepath.Join(r.tools.CacheDir, "plugin")); err != nil {
			return Infra("%v", err)
		}
	}
	if err := os.MkdirAll(opt.RunDir, 0o755); err != nil {
		return err
	}
	if s.Path != "" {
		if b, err := os.ReadFile(s.Path); err == nil {
			_ = os.WriteFile(filepath.Join(opt.RunDir, "scenario.yaml"), b, 0o644)
		}
	}
	r.res = &Result{Scenario: s.Name, Seed: opt.Seed, RunDir: opt.RunDir, ExitCodes: map[string]int{}, Images: map[string]string{}, Kernel: r.kern.SHA256,
		Idle: s.Idle, QEMU: r.tools.QEMU}
	if r.props, err = newPropsSink(opt.RunDir, uint64(s.Epoch)); err != nil {
		return err
	}
	guests := s.Guests()
	r.nodes = make([]*node, len(guests))
	for i, spec := range guests {
		var path, sum string
		if p, ok := opt.Images[spec.Name]; ok {
			path = p
			if sum, err = FileSHA256(p); err != nil {
				return Infra("node %s: image: %v", spec.Name, err)
			}
		} else if path, sum, err = BuildImage(s, spec, r.kern, r.tools); err != nil {
			return err
		}
		r.res.Images[spec.Name] = sum
		n := &node{spec: spec, dir: filepath.Join(opt.RunDir, spec.Name), exits: map[string]int{}}
		n.props = r.props
		r.nodes[i] = n
		if err := os.MkdirAll(n.dir, 0o755); err != nil {
			return err
		}
		n.cfg = vmm.Config{
			Name: spec.Name, QEMU: r.tools.QEMU, BIOS: r.tools.BIOS, Kernel: r.kern.Vmlinux, Initrd: path,
			MemoryMiB: spec.Memory, Plugin: r.plugin, HoldNS: r.holdNS(),
			Shared: filepath.Join(n.dir, "shared"), Console: filepath.Join(n.dir, "console.log"),
		}
		if err := r.attachDisk(n); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(n.dir, "qemu.argv"), []byte(strings.Join(n.cfg.CommandLine(), "\n")+"\n"), 0o644); err != nil {
			return err
		}
		if n.events, err = os.Create(filepath.Join(n.dir, "events.jsonl")); err != nil {
			return err
		}
		if n.outF, err = os.Create(filepath.Join(n.dir, "output.log")); err != nil {
			return err
		}
		n.out = bufio.NewWriter(n.outF)
	}
	addrs := make([]netip.Addr, len(guests))
	for i, g := range guests {
		addrs[i] = g.Addr
	}
	r.sw = scheduler.NewSwitch(addrs)
	r.sw.SetSeed(opt.Seed) // a restore brings back its snapshot's
	if r.pcapF, err = os.Create(filepath.Join(opt.RunDir, "network.pcap")); err != nil {
		return err
	}
	r.pcapW = bufio.NewWriter(r.pcapF)
	if r.pcap, err = scheduler.NewPCAPWriter(r.pcapW, uint64(s.Epoch)); err != nil {
		return err
	}
	if r.traceF, err = os.Create(filepath.Join(opt.RunDir, "trace.log")); err != nil {
		return err
	}
	r.traceW = bufio.NewWriter(r.traceF)
	return nil
}

// holdNS is vmm.Config.HoldNS for this run's guests.
func (r *runner) holdNS() uint64 {
	if r.hold {
		return uint64(r.s.Epoch)
	}
	return 0
}

func (r *runner) close() {
	for _, n := range r.nodes {
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
	if r.pcapW != nil {
		r.pcapW.Flush()
		r.pcapF.Close()
	}
	if r.traceW != nil {
		r.traceW.Flush()
		r.traceF.Close()
	}
	if r.faultLog != nil {
		r.faultLog.Flush()
		r.faultLogF.Close()
	}
	r.props.close()
}

// start starts every node's QEMU, booting or (incoming) waiting for a
// migration.
func (r *runner) start(ctx context.Context, incoming bool) error {
	for _, n := range r.nodes {
		cfg := n.cfg
		cfg.Incoming = incoming
		m, err := vmm.Start(ctx, cfg)
		if err != nil {
			return Infra("%v", err)
		}
		n.m = m
		if n.console, err = os.Open(n.cfg.Console); err != nil {
			return err
		}
	}
	return nil
}

func (r *runner) boot(ctx context.Context) error {
	r.logf("booting %d guest(s)", len(r.nodes))
	return r.start(ctx, false)
}

// ctlState is the controller's part of a snapshot: what, besides the
// guests, decides how the run goes on. Guest state (including each shared
// page, RX frames already written) is in the migration files.
type ctlState struct {
	Epoch     uint64                    `json:"epoch"` // the barrier the snapshot was taken at
	Chain     trace.ChainState          `json:"chain"`
	Switch    scheduler.State           `json:"switch"`
	Exits     map[string]map[string]int `json:"exits"` // node → process → exit code so far
	ReadyNS   uint64                    `json:"ready_virtual_ns"`
	DroppedRX uint64                    `json:"dropped_rx"`
	Branch    uint64                    `json:"branch"` // the branch seed in the pages
	// Faults identifies the fault spec the run had (faultsID): a run
	// continued with another would not have the past it was saved with.
	Faults string `json:"faults,omitempty"`
	// TraceLine is trace.log's line for Epoch: a warm start writes it, so
	// that its trace.log reads like a cold boot's from epoch 0.
	TraceLine string `json:"trace_line,omitempty"`
	// Props is what the SDK told the run so far (props.go).
	Props *propsState `json:"props,omitempty"`
	// Wake names the nodes whose agents the controller wakes when it
	// releases them from the barrier the snapshot was taken at (hold
	// mode; see release). A restored guest is held at that same instant
	// again, and is released the same way.
	Wake []string `json:"wake,omitempty"`
}

func (r *runner) openStore() (*snapshot.Store, error) {
	if r.store == nil {
		st, err := snapshot.Open(r.opt.Store)
		if err != nil {
			return nil, Infra("snapshot store %s: %v", r.opt.Store, err)
		}
		r.store = st
	}
	return r.store, nil
}

// restore starts the cluster from snapshot opt.From instead of booting.
func (r *runner) restore(ctx context.Context) error {
	t0 := time.Now()
	st, err := r.openStore()
	if err != nil {
		return err
	}
	m, cs, err := r.load(ctx, st, r.opt.From, nil)
	if err != nil {
		return err
	}
	r.res.Segments = append([]snapshot.Segment(nil), m.Segments...)
	if len(r.res.Segments) > 0 {
		r.res.Seed = r.res.Segments[0].Seed
	}
	if cs.Faults != r.faultsID() {
		return Infra("snapshot %s was taken with fault spec %q, this run has %q: a continued run keeps the faults it had (give the same --faults, or none if the scenario's were used)", m.ID, cs.Faults, r.faultsID())
	}
	r.res.FromSnapshot, r.res.FromEpoch = m.ID, cs.Epoch
	r.parent = m.ID
	if r.opt.Branch {
		// Written at the first barrier after the restore, where every
		// guest is held at a point that does not depend on where its
		// vCPU happened to pause.
		r.branchAt = r.startEpoch
		r.res.Segments = append(r.res.Segments, snapshot.Segment{FromEpoch: r.branchAt, Seed: r.opt.BranchSeed})
	}
	r.res.RestoreMS = time.Since(t0).Milliseconds()
	r.logf("restored in %d ms", r.res.RestoreMS)
	return nil
}

// load starts every node from snapshot id of st and restores the
// controller's state from it. beforeCont, if set, runs while every guest is
// loaded and paused: the page may be written then.
func (r *runner) load(ctx context.Context, st *snapshot.Store, id string, beforeCont func()) (*snapshot.Manifest, *ctlState, error) {
	m, err := st.Get(id)
	if err != nil {
		return nil, nil, Infra("%v", err)
	}
	if err := r.sameMachines(m); err != nil {
		return nil, nil, err
	}
	var cs ctlState
	if err := json.Unmarshal(m.State, &cs); err != nil {
		return nil, nil, Infra("snapshot %s: controller state: %v", m.ID, err)
	}
	r.logf("restoring snapshot %s (epoch %d, %.3f s virtual)", m.ID, m.Epoch, float64(m.VirtualNS)/1e9)
	tmp, err := os.MkdirTemp(scratch(r.opt.RunDir, r.guestBytes()), "detvm-restore-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(tmp)
	paths, err := st.Materialize(m.ID, tmp)
	if err != nil {
		return nil, nil, Infra("%v", err)
	}
	byName := map[string]string{}
	for _, p := range paths {
		byName[filepath.Base(p)] = p
	}
	if err := r.start(ctx, true); err != nil {
		return nil, nil, err
	}
	err = r.each(func(n *node) error {
		p, ok := byName[n.spec.Name+".mig"]
		if !ok {
			return fmt.Errorf("snapshot %s has no state for node %s", m.ID, n.spec.Name)
		}
		return n.m.Load(ctx, p)
	})
	if err != nil {
		return nil, nil, Infra("%v", err)
	}
	if beforeCont != nil {
		beforeCont()
	}
	// Resume only once all are loaded: a running guest uses a whole core
	// even when idle and would slow the others' loads (DESIGN.md).
	if err := r.each(func(n *node) error { return n.m.Cont(ctx) }); err != nil {
		return nil, nil, Infra("%v", err)
	}
	if r.hold {
		// QEMU holds a restored guest again at once, at the instant it
		// was saved at: release it as the saved run did.
		for _, n := range r.nodes {
			if err := n.m.WaitBarrier(r.opt.EpochTimeout); err != nil {
				return nil, nil, Infra("%s", n.hangReport(cs.Epoch, err))
			}
			n.wake = slices.Contains(cs.Wake, n.spec.Name)
			if err := r.release(n); err != nil {
				return nil, nil, err
			}
		}
	}
	if r.chain, err = trace.RestoreChain(cs.Chain); err != nil {
		return nil, nil, Infra("snapshot %s: %v", m.ID, err)
	}
	if err := r.sw.Restore(cs.Switch); err != nil {
		return nil, nil, Infra("snapshot %s: %v", m.ID, err)
	}
	for _, n := range r.nodes {
		for p, c := range cs.Exits[n.spec.Name] {
			n.exits[p] = c
		}
	}
	r.res.ReadyNS, r.res.DroppedRX = cs.ReadyNS, cs.DroppedRX
	r.branch = cs.Branch
	if err := r.props.restore(cs.Props); err != nil {
		return nil, nil, Infra("snapshot %s: %v", m.ID, err)
	}
	r.startEpoch = cs.Epoch + 1
	return m, &cs, nil
}

// sameMachines refuses a snapshot taken with other images, kernel or QEMU:
// restoring it would not continue the run it came from.
func (r *runner) sameMachines(m *snapshot.Manifest) error {
	var diffs []string
	if m.Kernel != r.res.Kernel {
		diffs = append(diffs, fmt.Sprintf("kernel %.12s (now %.12s)", m.Kernel, r.res.Kernel))
	}
	if m.QEMU != r.qemuV {
		diffs = append(diffs, fmt.Sprintf("QEMU %s (now %s)", m.QEMU, r.qemuV))
	}
	for _, n := range r.nodes {
		if got, want := r.res.Images[n.spec.Name], m.Images[n.spec.Name]; got != want {
			if want == "" {
				diffs = append(diffs, fmt.Sprintf("no node %s", n.spec.Name))
			} else {
				diffs = append(diffs, fmt.Sprintf("node %s image %.12s (now %.12s)", n.spec.Name, want, got))
			}
		}
	}
	if len(m.Images) != len(r.nodes) {
		diffs = append(diffs, fmt.Sprintf("%d nodes (now %d)", len(m.Images), len(r.nodes)))
	}
	if len(diffs) > 0 {
		return Infra("snapshot %s was taken with %s: the scenario or the build changed since; continue from a snapshot of this build, or run from boot",
			m.ID, strings.Join(diffs, ", "))
	}
	return nil
}

// each runs f for every node in parallel and returns the first error in
// node order.
func (r *runner) each(f func(*node) error) error {
	errs := make([]error, len(r.nodes))
	var wg sync.WaitGroup
	for i, n := range r.nodes {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = f(n) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// loop drives the epochs from the first barrier to the end of the run.
func (r *runner) loop(ctx context.Context) error {
	s, opt, res, nodes := r.s, r.opt, r.res, r.nodes
	epochNS := uint64(s.Epoch)
	maxEpochs := uint64(s.Duration) / epochNS
	var snapEvery uint64
	if opt.SnapshotEvery > 0 {
		snapEvery = max(1, uint64(opt.SnapshotEvery)/epochNS)
	}
	// A run whose guests only run daemons waits for nothing: it lasts its
	// duration, rather than being "all exited" at once.
	waitsFor := false
	for _, n := range nodes {
		waitsFor = waitsFor || (n.spec.Binary != "" && !n.spec.Daemon) || len(n.spec.Commands) > 0 || n.spec.Test != nil
	}
	bootStart := time.Now()
	lastProgress := time.Now()
	var loopStart time.Time
	var held time.Duration
	if r.hold && r.startEpoch == 0 {
		if err := r.bootRounds(ctx); err != nil {
			return err
		}
	}
	for epoch := r.startEpoch; ; epoch++ {
		timeout := opt.EpochTimeout
		if epoch == 0 {
			timeout = opt.BootTimeout
		}
		seen := make([]trace.Guest, len(nodes))
		allDone := true
		for i, n := range nodes {
			if ctx.Err() != nil {
				return Infra("interrupted at epoch %d; what the run produced so far is in %s", epoch, opt.RunDir)
			}
			if _, held := r.held[i]; held {
				// Kept in its barrier by a node fault: it ran nothing.
				p := n.m.Page()
				seen[i] = trace.Guest{Name: n.spec.Name, MonoNS: p.MonoNS()}
				allDone = allDone && p.State() == wire.StateDone
				continue
			}
			t := timeout
			if r.rebooting[i] && !r.hold {
				t = opt.BootTimeout
			}
			n.wake = false
			if n.atBarrier {
				n.atBarrier = false
			} else if err := n.m.WaitBarrier(t); err != nil {
				return Infra("%s", n.hangReport(epoch, err))
			}
			if r.rebooting[i] {
				if r.hold && !ready(n.m.Page()) {
					// Still booting, held at every boundary: its
					// console so far, and nothing else yet.
					g, err := n.collectConsole()
					if err != nil {
						return Infra("%s: epoch %d: %v", n.spec.Name, epoch, err)
					}
					seen[i] = g
					allDone = false
					if opt.NoBarrier && epoch > 0 {
						if err := n.m.Release(); err != nil { // as below
							return Infra("%v", err)
						}
					}
					continue
				}
				// A power-cut node's fresh agent is ready: its clock
				// origin is this barrier (wire: Base).
				delete(r.rebooting, i)
				n.m.Page().SetBase(epoch)
				n.wake = true
			}
			if opt.NoBarrier && epoch > 0 {
				// Debug mode: let the guest run on while we read its page
				// (woken every time, since what it will find is not known
				// yet).
				if err := n.m.Wake(); err != nil {
					return Infra("%v", err)
				}
			}
			g, done, err := n.collect(epoch)
			if opt.NoBarrier && err != nil {
				err = nil // torn reads are what this mode is for
			}
			if err != nil {
				return Infra("%s: epoch %d: %v", n.spec.Name, epoch, err)
			}
			frames, err := wire.SplitFrames(g.Net)
			if err != nil {
				return Infra("%s: epoch %d: %v", n.spec.Name, epoch, err)
			}
			r.sw.Send(epoch, i, frames)
			seen[i] = g
			allDone = allDone && done
		}
		allHeld := time.Now()
		// Faults that begin or heal at the boundary into epoch+1. The
		// switch's new table applies to frames sent from epoch+1 on.
		var fp plan
		if epoch > 0 {
			// The boundary into epoch 1 belongs to boot (a warm start
			// caches the cluster there), so faults begin from epoch 2.
			fp = r.planFaults(epoch + 1)
		}
		if fp.setRules {
			if err := r.sw.SetRules(fp.rules); err != nil {
				return Infra("epoch %d: fault rules: %v", epoch+1, err)
			}
		}
		// Frames sent during this epoch reach their destinations at the
		// start of the next one, while every guest is still held. A node
		// held by a node fault receives nothing: like a NIC of a stopped
		// machine, its frames are lost.
		due := r.sw.Deliver(epoch + 1)
		kept := due[:0]
		for _, f := range due {
			if _, held := r.held[f.Dst]; held || r.rebooting[f.Dst] {
				res.DroppedDown++
				continue
			}
			kept = append(kept, f)
		}
		due = kept
		if err := r.pcap.Write(due); err != nil {
			return err
		}
		for _, f := range due {
			nodes[f.Dst].rxq = append(nodes[f.Dst].rxq, f.Data)
		}
		for i, n := range nodes {
			if _, held := r.held[i]; held || r.rebooting[i] || n.busy {
				continue
			}
			for _, f := range n.rxq {
				if n.m.Page().AppendRX(wire.AppendFrame(nil, f)) == 0 {
					res.DroppedRX++
				}
				n.wake = true
			}
			n.rxq = n.rxq[:0]
		}
		if len(fp.lines) > 0 {
			// The controller's own "guest": what the fault schedule did
			// is part of the trace, so two runs whose faults differ
			// differ in their hash even if no guest noticed.
			seen = append(seen, trace.Guest{Name: faultsGuest, Events: []byte(strings.Join(fp.lines, "\n") + "\n")})
		}
		r.chain.Add(epoch, seen)
		changed := epoch == 0 || len(fp.lines) > 0
		for _, g := range seen {
			changed = changed || len(g.Console) > 0 || len(g.Events) > 0 || len(g.Net) > 0
		}
		if epoch == 0 {
			res.BootWallMS = time.Since(bootStart).Milliseconds()
			lastProgress = time.Now()
			res.ReadyNS = seen[0].MonoNS
			r.logf("all agents ready: %d ms wall, %.3f s virtual", res.BootWallMS, float64(res.ReadyNS)/1e9)
			if r.warmSave == "" {
				for _, n := range nodes {
					n.m.Page().SetSeed(opt.Seed)
				}
			}
			for _, n := range nodes {
				n.wake = true // with the seed, or to wait for it (saveWarm)
			}
		}
		if epoch == r.branchAt && r.branchAt != 0 {
			r.branch = opt.BranchSeed
			r.sw.SetSeed(r.branch)
			for _, n := range nodes {
				n.m.Page().SetBranch(r.branch)
				n.wake = true
			}
			r.logf("branch: seed %d from epoch %d", r.branch, epoch)
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
			line := trace.Line{Epoch: epoch, Chain: r.chain.Sum()}
			for _, g := range seen {
				line.Guests = append(line.Guests, g.Name+"="+g.Digest())
			}
			if res.Ended != "" {
				line.Comment = "end"
			}
			r.lastLine = line.Format()
			fmt.Fprintln(r.traceW, r.lastLine)
			if err := r.expect(line); err != nil {
				return err
			}
		}
		if res.Ended != "" {
			break
		}
		if opt.Log != nil && time.Since(lastProgress) > 5*time.Second {
			lastProgress = time.Now()
			r.logf("epoch %d/%d (%.2f s virtual)", epoch, maxEpochs, float64(epoch*epochNS)/1e9)
		}
		for i, n := range nodes {
			n.m.Page().SetEpoch(epoch + 1)
			r.pendingCmds[i] = append(r.pendingCmds[i], fp.cmds[i]...)
		}
		if err := r.applyHolds(ctx, fp, epoch+1); err != nil {
			return err
		}
		if epoch == 0 && r.warmSave != "" {
			// Saves, writes the seed and lets the guests run on.
			if err := r.saveWarm(ctx, r.lastLine); err != nil {
				return err
			}
		} else if snapEvery > 0 && epoch > 0 && epoch%snapEvery == 0 && epoch != r.res.FromEpoch && len(r.held) == 0 && len(r.rebooting) == 0 && r.settled() {
			// The snapshot releases the guests itself (pause → save →
			// cont); they run on into epoch+1 as if nothing happened.
			if err := r.snapshot(ctx, epoch); err != nil {
				return err
			}
		} else {
			for i, n := range nodes {
				if opt.NoBarrier && epoch > 0 {
					continue // released already
				}
				if _, held := r.held[i]; held || (r.rebooting[i] && !r.hold) {
					continue // not in its barrier, or kept there
				}
				if err := r.release(n); err != nil {
					return err
				}
			}
		}
		if epoch == r.startEpoch {
			loopStart = time.Now()
		} else {
			held += time.Since(allHeld)
		}
	}
	if ep := res.Epochs - 1 - r.startEpoch; res.Epochs > r.startEpoch+1 {
		wall := time.Since(loopStart)
		res.Perf = Perf{
			EpochWallUS:    float64(wall.Microseconds()) / float64(ep),
			HeldUS:         float64(held.Microseconds()) / float64(ep),
			VirtualPerWall: float64(ep*epochNS) / float64(wall.Nanoseconds()),
		}
	}
	return nil
}

// bootRounds holds booting guests (hold mode) at every epoch boundary and
// releases them until every agent is ready. The guests stay held at the
// round they all are: the loop's epoch 0.
func (r *runner) bootRounds(ctx context.Context) error {
	start := time.Now()
	for {
		nReady := 0
		for _, n := range r.nodes {
			if ctx.Err() != nil {
				return Infra("interrupted while booting; what the run produced so far is in %s", r.opt.RunDir)
			}
			if err := n.m.WaitBarrier(r.opt.BootTimeout); err != nil {
				return Infra("%s", n.hangReport(0, err))
			}
			if ready(n.m.Page()) {
				nReady++
			}
		}
		if nReady == len(r.nodes) {
			for _, n := range r.nodes {
				n.atBarrier = true
			}
			return nil
		}
		if time.Since(start) > r.opt.BootTimeout {
			for _, n := range r.nodes {
				if !ready(n.m.Page()) {
					return Infra("%s", n.hangReport(0, fmt.Errorf("agent not ready after %v", r.opt.BootTimeout)))
				}
			}
		}
		for _, n := range r.nodes {
			if err := n.m.Release(); err != nil {
				return Infra("%v", err)
			}
		}
	}
}

// ready reports whether a held guest's agent has booted (hold mode).
func ready(p *wire.Page) bool { return p.Valid() && p.State() != 0 }

// release lets a node held at the current barrier run on, waking its agent
// if the page has something for it (hold mode).
func (r *runner) release(n *node) error {
	var err error
	if n.wake && r.hold {
		err = n.m.Wake()
	} else {
		err = n.m.Release()
	}
	n.wake = false
	if err != nil {
		return Infra("%v", err)
	}
	return nil
}

// settled reports whether nothing of the run lives only in the controller
// besides what ctlState saves: no page left busy, no frames queued.
func (r *runner) settled() bool {
	for _, n := range r.nodes {
		if n.busy || len(n.rxq) > 0 {
			return false
		}
	}
	return true
}

// scratch is where migration files live between QEMU and the store: in
// memory when /dev/shm has room for need bytes with a margin, so that they
// never reach the disk (the store's syncfs would otherwise flush hundreds of
// MB it is about to delete), else in the run directory (containers often
// give /dev/shm only 64 MB).
func scratch(runDir string, need int64) string {
	var st unix.Statfs_t
	if unix.Access("/dev/shm", unix.W_OK) == nil && unix.Statfs("/dev/shm", &st) == nil &&
		int64(st.Bavail)*st.Bsize > 2*need {
		return "/dev/shm"
	}
	return runDir
}

// guestBytes is the guests' memory: an upper bound of their migration files.
func (r *runner) guestBytes() int64 {
	var n int64
	for _, g := range r.nodes {
		n += int64(g.spec.Memory+16)<<20 + g.cfg.DiskBytes
	}
	return n
}

// expect checks a trace line against the run being reproduced.
func (r *runner) expect(l trace.Line) error {
	if r.opt.Expect == nil {
		return nil
	}
	exp := r.opt.Expect
	for len(exp) > 0 && exp[0].Epoch <= r.res.FromEpoch && r.res.FromEpoch > 0 {
		exp = exp[1:] // before the snapshot this run continues from
	}
	var want trace.Line
	if len(exp) > 0 {
		want = exp[0]
		r.opt.Expect = exp[1:]
	} else {
		r.opt.Expect = exp[:0]
	}
	if d, ok := trace.Compare([]trace.Line{want}, []trace.Line{l}); !ok || len(exp) == 0 {
		if len(exp) == 0 {
			d = trace.Divergence{Epoch: l.Epoch, What: fmt.Sprintf("activity at epoch %d after the recorded run ended", l.Epoch)}
		}
		return &DivergenceError{d}
	}
	return nil
}

// snapshot saves the whole cluster, held at the barrier of epoch, into the
// store, and lets it run on. The page of every guest already says epoch+1
// and holds the frames due then, so the snapshot is the exact state a
// continuation needs.
func (r *runner) snapshot(ctx context.Context, epoch uint64) error {
	st, err := r.openStore()
	if err != nil {
		return err
	}
	info := SnapshotInfo{Epoch: epoch, VirtualNS: epoch * uint64(r.s.Epoch)}
	t0 := time.Now()
	paths, err := r.pauseAndSave(ctx, epoch)
	if err != nil {
		return err
	}
	defer os.RemoveAll(filepath.Dir(paths[0]))
	info.SaveMS = time.Since(t0).Milliseconds()
	state, err := json.Marshal(r.ctlState(epoch, "")) // before release clears the wakes
	if err != nil {
		return err
	}
	// The guests are saved: let them run while the files are stored.
	if err := r.each(func(n *node) error { return n.m.Cont(ctx) }); err != nil {
		return Infra("snapshot at epoch %d: %v", epoch, err)
	}
	if err := r.releaseHeld(); err != nil {
		return err
	}
	t2 := time.Now()
	m := &snapshot.Manifest{
		Parent: r.parent, Epoch: epoch, VirtualNS: info.VirtualNS, Segments: r.res.Segments,
		Scenario: r.s.Name, Kernel: r.res.Kernel, Images: r.res.Images, QEMU: r.qemuV, State: state,
	}
	if m, err = st.Put(m, paths); err != nil {
		return Infra("snapshot at epoch %d: store: %v", epoch, err)
	}
	info.StoreMS = time.Since(t2).Milliseconds()
	info.ID, info.Bytes, info.NewBytes = m.ID, m.Bytes, m.NewBytes
	r.parent = m.ID
	r.res.Snapshots = append(r.res.Snapshots, info)
	r.logf("snapshot %s at epoch %d (%.3f s virtual): pause+save %d ms, store %d ms, %d MB new",
		m.ID, epoch, float64(info.VirtualNS)/1e9, info.SaveMS, info.StoreMS, info.NewBytes>>20)
	return nil
}

// releaseHeld releases every guest after a pause in hold mode, where the
// pause left them held (vmm: BeginPause).
func (r *runner) releaseHeld() error {
	if !r.hold {
		return nil
	}
	for _, n := range r.nodes {
		if err := r.release(n); err != nil {
			return err
		}
	}
	return nil
}

// pauseAndSave pauses every guest held at the barrier of epoch and writes
// each one's state to a file; it returns the files' paths. The guests
// stay paused.
func (r *runner) pauseAndSave(ctx context.Context, epoch uint64) ([]string, error) {
	waits := make([]func(context.Context) error, len(r.nodes))
	for i, n := range r.nodes {
		var err error
		if waits[i], err = n.m.BeginPause(ctx); err != nil {
			return nil, Infra("snapshot at epoch %d: %v", epoch, err)
		}
	}
	for _, w := range waits {
		if err := w(ctx); err != nil {
			return nil, Infra("snapshot at epoch %d: %v", epoch, err)
		}
	}
	tmp, err := os.MkdirTemp(scratch(r.opt.RunDir, r.guestBytes()), "detvm-snapshot-")
	if err != nil {
		return nil, err
	}
	paths := make([]string, len(r.nodes))
	for i, n := range r.nodes {
		paths[i] = filepath.Join(tmp, n.spec.Name+".mig")
	}
	err = r.each(func(n *node) error { return n.m.Save(ctx, filepath.Join(tmp, n.spec.Name+".mig")) })
	if err != nil {
		os.RemoveAll(tmp)
		return nil, Infra("snapshot at epoch %d: %v", epoch, err)
	}
	return paths, nil
}

// ctlState freezes the controller at the barrier of epoch.
func (r *runner) ctlState(epoch uint64, traceLine string) ctlState {
	cs := ctlState{Epoch: epoch, Chain: r.chain.State(), Switch: r.sw.State(), Exits: map[string]map[string]int{},
		ReadyNS: r.res.ReadyNS, DroppedRX: r.res.DroppedRX, Branch: r.branch, TraceLine: traceLine, Faults: r.faultsID()}
	for _, n := range r.nodes {
		cs.Exits[n.spec.Name] = n.exits
		if n.wake {
			cs.Wake = append(cs.Wake, n.spec.Name)
		}
	}
	var err error
	if cs.Props, err = r.props.state(); err != nil {
		// The snapshot still continues the guests; a run from it lacks
		// what the SDK said before it.
		r.logf("snapshot at epoch %d: SDK state not saved: %v", epoch, err)
	}
	return cs
}
