package cluster

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/detvm/detvm/faults"
	"github.com/detvm/detvm/scheduler"
	"github.com/detvm/detvm/wire"
)

// AppliedFault is one fault of the run's schedule that took effect, for
// result.json and the report.
type AppliedFault struct {
	ID         int    `json:"id"`
	Kind       string `json:"kind"`
	StartEpoch uint64 `json:"start_epoch"`
	EndEpoch   uint64 `json:"end_epoch"`
	Fault      string `json:"fault"` // faults.Fault.String()
}

// hold is a node kept in its barrier by a node fault.
type hold struct {
	fault  int
	since  uint64 // the first epoch the node does not run
	reboot bool   // power cut: boots afresh when the hold ends
}

// plan is what one epoch boundary does: everything in it is a function of
// the schedule and the epoch number, never of timing, so the driver stays
// a pure decision plus the side effects the runner carries out at the
// barrier.
type plan struct {
	rules    []scheduler.Rule // the switch's new fault table, when changed
	setRules bool
	cmds     map[int][]wire.Command // node → commands to run as it resumes
	hold     map[int]hold           // nodes to keep in their barrier from this boundary on
	unhold   map[int]hold           // nodes whose hold ends at this boundary
	lines    []string               // the faults log for this boundary
	started  []faults.Fault         // the faults that begin at this boundary
}

// faultDriver turns a compiled schedule into the actions of each epoch
// boundary (DESIGN.md: control and faults use the same path — a switch
// rule, a ring message to the agent, or a QMP command at a barrier).
type faultDriver struct {
	sched   faults.Schedule
	n       int
	names   []string // node names, for the log
	epoch   time.Duration
	netIDs  []int        // IDs of the network faults the switch's table was built from
	held    map[int]hold // node → its current hold
	strobes map[int]int  // fault ID → flips so far (its clock is off by Offset when odd)
}

func newFaultDriver(s faults.Schedule, names []string, epoch time.Duration) *faultDriver {
	return &faultDriver{sched: s, n: len(names), names: names, epoch: epoch, held: map[int]hold{}, strobes: map[int]int{}}
}

// at plans the boundary before epoch `next` runs. Faults whose Start is
// next begin; those whose End is next heal. Starting from the middle of a
// schedule (a restored snapshot) needs no history: the active set and
// the holds are recomputed from the schedule by resume.
func (d *faultDriver) at(next uint64) plan {
	p := plan{cmds: map[int][]wire.Command{}, hold: map[int]hold{}, unhold: map[int]hold{}}
	t := time.Duration(next) * d.epoch
	logf := func(verb string, f faults.Fault) {
		p.lines = append(p.lines, fmt.Sprintf("epoch=%d t=%s %s %s", next, t, verb, f.Format(d.names)))
	}
	for _, f := range d.sched.Ending(next) {
		logf("heal", f)
		d.heal(&p, f, next)
	}
	p.started = d.sched.Starting(next)
	for _, f := range p.started {
		logf("start", f)
		d.start(&p, f, next)
	}
	var ids []int
	var net []faults.Fault
	for _, f := range d.sched.Active(next) {
		switch {
		case f.Kind.Class() == faults.ClassNetwork:
			ids = append(ids, f.ID)
			net = append(net, f)
		case f.Kind == faults.ClockStrobe && f.Start != next:
			// Strobes flip at every period boundary strictly inside
			// the fault.
			if per := d.epochs(f.Period); per > 0 && (next-f.Start)%per == 0 {
				d.flip(&p, f)
			}
		}
	}
	if !slices.Equal(ids, d.netIDs) {
		d.netIDs = ids
		p.setRules = true
		p.rules = faults.NetRules(net, d.n, d.epoch)
	}
	return p
}

func (d *faultDriver) epochs(t time.Duration) uint64 {
	return uint64((t + d.epoch - 1) / d.epoch)
}

func (d *faultDriver) cmd(p *plan, f faults.Fault, c wire.Command) {
	c.Fault = f.ID
	for _, n := range f.Nodes {
		p.cmds[n] = append(p.cmds[n], c)
	}
}

func (d *faultDriver) start(p *plan, f faults.Fault, next uint64) {
	switch f.Kind {
	case faults.Kill:
		d.cmd(p, f, wire.Command{Op: "kill", Proc: f.Proc})
	case faults.Pause:
		d.cmd(p, f, wire.Command{Op: "stop", Proc: f.Proc})
	case faults.Throttle:
		d.cmd(p, f, wire.Command{Op: "cpu-max", Proc: f.Proc, Ratio: f.Ratio})
	case faults.Freeze:
		d.cmd(p, f, wire.Command{Op: "freeze", Proc: f.Proc})
	case faults.ClockJump:
		d.cmd(p, f, wire.Command{Op: "clock-step", DeltaNS: int64(f.Offset)})
	case faults.ClockStrobe:
		d.flip(p, f)
	case faults.ClockSkew:
		d.cmd(p, f, wire.Command{Op: "clock-freq", PPM: f.PPM})
	case faults.PowerCut, faults.VMFreeze:
		for _, n := range f.Nodes {
			if _, busy := d.held[n]; busy {
				p.lines = append(p.lines, fmt.Sprintf("epoch=%d skip #%d: %s is already held by another node fault", next, f.ID, d.names[n]))
				continue
			}
			h := hold{fault: f.ID, since: next, reboot: f.Kind == faults.PowerCut}
			d.held[n] = h
			p.hold[n] = h
		}
	}
}

func (d *faultDriver) heal(p *plan, f faults.Fault, next uint64) {
	switch f.Kind {
	case faults.Kill:
		d.cmd(p, f, wire.Command{Op: "restart", Proc: f.Proc})
	case faults.Pause:
		d.cmd(p, f, wire.Command{Op: "cont", Proc: f.Proc})
	case faults.Throttle:
		d.cmd(p, f, wire.Command{Op: "cpu-max", Proc: f.Proc, Ratio: 1})
	case faults.Freeze:
		d.cmd(p, f, wire.Command{Op: "thaw", Proc: f.Proc})
	case faults.ClockJump:
		d.cmd(p, f, wire.Command{Op: "clock-step", DeltaNS: -int64(f.Offset)})
	case faults.ClockStrobe:
		if d.strobes[f.ID]%2 == 1 {
			d.flip(p, f) // back to where it started
		}
		delete(d.strobes, f.ID)
	case faults.ClockSkew:
		d.cmd(p, f, wire.Command{Op: "clock-freq", PPM: 0})
	case faults.PowerCut, faults.VMFreeze:
		for _, n := range f.Nodes {
			if h, ok := d.held[n]; ok && h.fault == f.ID {
				delete(d.held, n)
				p.unhold[n] = h
			}
		}
	}
}

// flip steps a strobing clock by +Offset on even flips and back on odd
// ones, so that it never drifts further than Offset.
func (d *faultDriver) flip(p *plan, f faults.Fault) {
	delta := int64(f.Offset)
	if d.strobes[f.ID]%2 == 1 {
		delta = -delta
	}
	d.strobes[f.ID]++
	d.cmd(p, f, wire.Command{Op: "clock-step", DeltaNS: delta})
}

// resume brings a driver created for a run continued from a snapshot at
// epoch `from` to the state it had there: the holds in force, the strobe
// flips made and the switch's table (which the snapshot also carries).
func (d *faultDriver) resume(from uint64) {
	for e := uint64(1); e <= from; e++ {
		d.at(e)
	}
}

// faultsGuest names the controller's line in trace.log: the fault log of
// the epochs in which faults began or healed.
const faultsGuest = "faults"

// planFaults plans the boundary into epoch next and records it in the
// run's faults.log and result.
func (r *runner) planFaults(next uint64) plan {
	if r.fd == nil {
		return plan{}
	}
	p := r.fd.at(next)
	for _, f := range p.started {
		r.res.Faults = append(r.res.Faults, AppliedFault{ID: f.ID, Kind: string(f.Kind), StartEpoch: f.Start, EndEpoch: f.End, Fault: f.Format(r.fd.names)})
	}
	for _, l := range p.lines {
		fmt.Fprintln(r.faultLog, l)
		r.logf("fault: %s", l)
	}
	if len(p.lines) > 0 {
		r.faultLog.Flush() // a run that dies later still says what it did
	}
	return p
}

// applyHolds carries out the node faults of a boundary and hands the
// agents their commands, before the guests are released into epoch next.
func (r *runner) applyHolds(ctx context.Context, p plan, next uint64) error {
	for _, i := range sortedKeys(p.unhold) {
		h, n := p.unhold[i], r.nodes[i]
		page := n.m.Page()
		if !h.reboot {
			// VM freeze over: the agent's epochs go on from where they
			// stopped, and its wall clock jumps by the time it missed,
			// as a paused VM's does.
			frozen := next - h.since
			page.SetBase(page.Base() + frozen)
			r.pendingCmds[i] = append([]wire.Command{{Fault: h.fault, Op: "clock-step", DeltaNS: int64(frozen) * int64(r.s.Epoch)}}, r.pendingCmds[i]...)
			continue
		}
		// Power back on: a reset from a point fixed by the barrier, so
		// the reboot is the same in every run.
		delete(r.pendingCmds, i)
		_, _ = page.TakeCmd()
		_, _ = page.TakeRX()
		n.rxq = nil
		// Not ready until the fresh agent says so (hold mode: ready).
		page.SetState(0)
		if err := r.reset(ctx, n); err != nil {
			return Infra("power-cut fault #%d on %s at epoch %d: %v", h.fault, n.spec.Name, next, err)
		}
		r.rebooting[i] = true
		n.wake = false // nothing to wake yet: the guest boots afresh
	}
	for i, n := range r.nodes {
		if _, held := r.held[i]; held || r.rebooting[i] || n.busy || len(r.pendingCmds[i]) == 0 {
			continue
		}
		var enc []byte
		for _, c := range r.pendingCmds[i] {
			enc = wire.AppendCommand(enc, c)
		}
		took := n.m.Page().AppendCmd(enc)
		n.wake = n.wake || took > 0
		// Whole records only: count what fitted, keep the rest for the
		// next boundary.
		k := 0
		for used := 0; k < len(r.pendingCmds[i]) && used < took; k++ {
			used += len(wire.AppendCommand(nil, r.pendingCmds[i][k]))
		}
		r.pendingCmds[i] = r.pendingCmds[i][k:]
	}
	return nil
}

// reset reboots a guest held at its barrier: pause it exactly there
// (BeginPause), reset while paused, and let it boot (in hold mode it stays
// held until the loop releases it). QEMU runs with
// -no-reboot, under which system_reset would power the guest off, so the
// reboot action is switched for the duration of the request (it is read
// when the request is made, not when the main loop carries it out).
func (r *runner) reset(ctx context.Context, n *node) error {
	if err := n.m.PauseHeld(ctx); err != nil {
		return err
	}
	q := n.m.QMP()
	for _, c := range []struct {
		cmd  string
		args any
	}{
		{"set-action", map[string]string{"reboot": "reset"}},
		{"system_reset", nil},
		{"set-action", map[string]string{"reboot": "shutdown"}},
	} {
		if _, err := q.Execute(ctx, c.cmd, c.args); err != nil {
			return fmt.Errorf("%s: %w", c.cmd, err)
		}
	}
	return n.m.Cont(ctx)
}

func sortedKeys[V any](m map[int]V) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// startFaults compiles the run's fault schedule and opens its log. A run
// continued from a snapshot recomputes the driver's state at the
// snapshot's epoch from the schedule alone.
func (r *runner) startFaults() error {
	r.held, r.rebooting, r.pendingCmds = map[int]hold{}, map[int]bool{}, map[int][]wire.Command{}
	spec := r.opt.Faults
	if spec == nil {
		spec = r.s.Faults
	}
	if spec == nil {
		return nil
	}
	topo := faults.Topology{Sidecar: -1}
	for i, n := range r.nodes {
		topo.Names = append(topo.Names, n.spec.Name)
		if n.spec.Sidecar {
			topo.Sidecar = i
		}
	}
	var segs []faults.Segment
	for _, g := range r.res.Segments {
		segs = append(segs, faults.Segment{Seed: g.Seed, FromEpoch: g.FromEpoch})
	}
	sched, err := spec.Compile(topo, r.s.Epoch, r.s.Duration, segs)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(r.opt.RunDir, "faults.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	r.faultLogF, r.faultLog = f, bufio.NewWriter(f)
	r.fd = newFaultDriver(sched, topo.Names, r.s.Epoch)
	r.held = r.fd.held
	r.fd.resume(r.startEpoch)
	r.logf("fault schedule: %d fault(s)", len(sched))
	return nil
}

// faultsID names the run's fault spec for snapshots: "" for none, a
// built-in's name, the sha256 of a --faults file, or "scenario".
func (r *runner) faultsID() string {
	switch {
	case r.opt.Faults != nil:
		name, data := r.opt.Faults.Source()
		if data != nil {
			sum := sha256.Sum256(data)
			return "sha256:" + hex.EncodeToString(sum[:])
		}
		return name
	case r.s.Faults != nil:
		return "scenario"
	}
	return ""
}
