// Package cluster runs a scenario: it builds each node's image, starts one
// QEMU guest per node and drives them epoch by epoch through their barriers,
// folding what each guest shows into the trace hash. It is the thin,
// side-effecting driver around the pure packages (trace, wire, scenario).
package cluster

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/detvm/detvm/faults"
	"github.com/detvm/detvm/images"
	"github.com/detvm/detvm/scenario"
	"github.com/detvm/detvm/scheduler"
	"github.com/detvm/detvm/snapshot"
	"github.com/detvm/detvm/trace"
	"github.com/detvm/detvm/wire"
)

// Tools are the host files a run needs. Locate fills them in.
type Tools struct {
	QEMU string
	// PatchedQEMU is detvm's own build (scripts/build-qemu.sh), with the
	// icount warp race fixed; "" if it is not built. Idle mode "warp"
	// needs it.
	PatchedQEMU string
	// RaceFixed says PatchedQEMU is known to carry the race fix: the cached
	// default build, or a $DETVM_QEMU whose build-info.txt names a variant
	// with the fix. Only then do scenarios without idle: default to warp.
	RaceFixed bool
	BIOS      string
	Busybox   string
	Agent     string
	CacheDir  string
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
	if p := t.defaultPatchedQEMU(); os.Getenv("DETVM_QEMU") != "" {
		t.PatchedQEMU = t.QEMU // the user's choice, for every idle mode
		t.RaceFixed = fixedBuild(t.QEMU)
	} else if _, err := os.Stat(p); err == nil {
		t.PatchedQEMU, t.RaceFixed = p, true
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

// KernelFile describes a vmlinux given as a file (a replay bundle's).
func KernelFile(path string) (*images.Kernel, error) {
	sum, err := FileSHA256(path)
	if err != nil {
		return nil, Infra("kernel: %v", err)
	}
	return &images.Kernel{Version: "file", Vmlinux: path, SHA256: sum}, nil
}

// FileSHA256 is the hex SHA-256 of a file's content.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// defaultPatchedQEMU is where scripts/build-qemu.sh links the build of the
// current patches.
func (t Tools) defaultPatchedQEMU() string {
	return filepath.Join(t.CacheDir, "qemu", "default", "qemu-system-x86_64")
}

// fixedBuild reports whether qemu is one of scripts/build-qemu.sh's builds
// with the warp race fix: its build-info.txt names a variant without
// "stock". A QEMU detvm did not build may be anything, so it is not trusted
// to halt guests unless the user asks (--idle warp).
func fixedBuild(qemu string) bool {
	b, err := os.ReadFile(filepath.Join(filepath.Dir(qemu), "build-info.txt"))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "variant:"); ok {
			return !strings.Contains(v, "stock")
		}
	}
	return false
}

// HoldBuild reports whether qemu is a scripts/build-qemu.sh build with the
// hold patch (third_party/qemu/patches/0004-*hold*): its build-info.txt
// lists it. Idle mode warp needs it: those guests meet the controller at
// QEMU's holds, not at a barrier instruction.
func HoldBuild(qemu string) bool {
	b, err := os.ReadFile(filepath.Join(filepath.Dir(qemu), "build-info.txt"))
	return err == nil && strings.Contains(string(b), "-icount-hold-the-guest-")
}

// IdleMode is the idle mode a run of s uses: the scenario's own (or the
// CLI's) if it names one, else warp when detvm's patched QEMU is present,
// else spin. The run records the mode it used, so a replay on a machine
// without the patched QEMU asks for it instead of silently spinning.
func (t Tools) IdleMode(s *scenario.Scenario) string {
	switch {
	case s.Idle != "":
		return s.Idle
	case t.RaceFixed:
		return scenario.IdleWarp
	default:
		return scenario.IdleSpin
	}
}

// SpinWarning is what a run says when it falls back to spinning guests.
func (t Tools) SpinWarning() string {
	if t.PatchedQEMU != "" {
		return fmt.Sprintf("warning: idle guests spin: DETVM_QEMU=%s is not a detvm build with the icount warp fix, so idle time costs as much as work; pass --idle warp to halt them anyway, or unset DETVM_QEMU", t.QEMU)
	}
	return fmt.Sprintf("warning: idle guests spin: detvm's patched QEMU (%s) is not built, so idle time costs as much as work (several times slower on idle clusters); run `make setup` to build it",
		t.defaultPatchedQEMU())
}

// QEMUFor returns the QEMU for an idle mode: guests that halt ("warp")
// need detvm's patched build; spinning guests run on the stock one.
func (t Tools) QEMUFor(idle string) (string, error) {
	if idle != scenario.IdleWarp {
		return t.QEMU, nil
	}
	if t.PatchedQEMU == "" {
		return "", Infra("idle mode warp needs detvm's patched QEMU (%s): run `make setup`, or use --idle spin",
			t.defaultPatchedQEMU())
	}
	if !HoldBuild(t.PatchedQEMU) {
		return "", Infra("idle mode warp needs detvm's QEMU with the hold patch (0004), and %s has none (its build-info.txt does not list it): run `make setup` to rebuild it, or use --idle spin",
			t.PatchedQEMU)
	}
	return t.PatchedQEMU, nil
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

	// Store is the snapshot store directory; RunDir/snapshots when empty.
	Store string
	// SnapshotEvery takes a cluster snapshot each time this much virtual
	// time has passed since the run's start (0: never).
	SnapshotEvery time.Duration
	// From names a snapshot in Store to continue from instead of booting.
	// The run seed then comes from the snapshot.
	From string
	// Branch, with From, continues with BranchSeed for everything random
	// after the snapshot: a new segment of the run.
	Branch     bool
	BranchSeed uint64

	// Cold boots even when a warm start is cached.
	Cold bool

	// Kernel and Images, when set, are used as they are instead of the
	// cached kernel and images built from the scenario (a portable replay
	// bundle carries them). Images maps node name → initramfs path.
	Kernel string
	Images map[string]string
	// Expect, when set, is the trace.log of a run to reproduce: each
	// epoch is checked as it ends, and the first difference stops the run
	// with a *DivergenceError.
	Expect []trace.Line
	// Faults overrides the scenario's fault spec (detvm run --faults).
	Faults *faults.Spec
}

// DivergenceError is a replayed run that left its recorded trace.
type DivergenceError struct {
	trace.Divergence
}

func (e *DivergenceError) Error() string {
	return fmt.Sprintf("diverged at epoch %d: %s", e.Epoch, e.What)
}

// Verdict is the outcome of one property.
type Verdict struct {
	Property string `json:"property"`
	Status   string `json:"status"` // passed, failed, unknown
	Message  string `json:"message,omitempty"`
	// Kind is "exit" for a process's exit, else the SDK assertion's kind
	// (always, sometimes, ...: docs/sdk.md).
	Kind string `json:"kind,omitempty"`
	// FirstFailure says where a failed property first failed, when there
	// is such a point (not for a sometimes that was never true).
	FirstFailure *FirstFailure `json:"first_failure,omitempty"`
}

// Result is what a run produced. JSON times carry their unit in the name.
type Result struct {
	Scenario   string          `json:"scenario"`
	Seed       uint64          `json:"seed"`
	TraceHash  string          `json:"trace_hash"`
	RunDir     string          `json:"run_dir"`
	Epochs     uint64          `json:"epochs"`
	VirtualNS  uint64          `json:"virtual_ns"`
	WallMS     int64           `json:"wall_ms"`
	BootWallMS int64           `json:"boot_wall_ms"` // QEMU start → every agent at its first barrier
	ReadyNS    uint64          `json:"ready_virtual_ns"`
	Ended      string          `json:"ended"` // "all-exited" or "duration"
	Network    scheduler.Stats `json:"network"`
	Perf       Perf            `json:"perf"`
	DroppedRX  uint64          `json:"network_dropped_rx"` // frames that did not fit a receive region
	// DroppedDown counts frames due to a node that a node fault held
	// or cut off.
	DroppedDown uint64 `json:"network_dropped_down,omitempty"`
	// Faults is every fault of the schedule that started, in order.
	Faults    []AppliedFault    `json:"faults,omitempty"`
	ExitCodes map[string]int    `json:"exit_codes"`
	Verdicts  []Verdict         `json:"verdicts"`
	Images    map[string]string `json:"images"` // node → initramfs sha256
	Kernel    string            `json:"kernel"` // vmlinux sha256
	Idle      string            `json:"idle"`   // spin or warp
	QEMU      string            `json:"qemu"`   // the QEMU binary the run used
	// Segments describe the run's randomness: the run seed from epoch 0,
	// then each branch's seed from the epoch it took effect.
	Segments     []snapshot.Segment `json:"segments"`
	FromSnapshot string             `json:"from_snapshot,omitempty"`
	FromEpoch    uint64             `json:"from_epoch,omitempty"` // the snapshot's epoch: this run's trace.log starts after it
	RestoreMS    int64              `json:"restore_wall_ms,omitempty"`
	WarmStart    bool               `json:"warm_start"` // booted from the cached post-boot snapshot
	Snapshots    []SnapshotInfo     `json:"snapshots,omitempty"`

	// SetupCompleteEpoch is the epoch at which the first SDK
	// setup_complete was collected; 0 if none was (no process runs
	// before epoch 1).
	SetupCompleteEpoch uint64 `json:"setup_complete_epoch,omitempty"`
	// PropertyWarnings: SDK messages that were malformed, and messages
	// asserted with two kinds.
	PropertyWarnings []string `json:"property_warnings,omitempty"`
}

// SnapshotInfo is one snapshot a run took, with what it cost.
type SnapshotInfo struct {
	ID        string `json:"id"`
	Epoch     uint64 `json:"epoch"`
	VirtualNS uint64 `json:"virtual_ns"`
	SaveMS    int64  `json:"save_wall_ms"`  // all guests paused and their migration files written
	StoreMS   int64  `json:"store_wall_ms"` // chunked into the store
	Bytes     int64  `json:"bytes"`
	NewBytes  int64  `json:"new_bytes"`
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

// BuildImage builds a node's initramfs into the content-addressed image
// cache and returns its path and sha256.
func BuildImage(s *scenario.Scenario, n *scenario.Node, kern *images.Kernel, tools Tools) (path, sum string, err error) {
	if s.Idle == "" { // the image says whether the vCPU may halt
		c := *s
		c.Idle = tools.IdleMode(s)
		s = &c
	}
	disk, err := nodeDisk(tools, n)
	if err != nil {
		return "", "", err
	}
	img, err := nodeImage(s, n, kern, tools.Agent, tools.Busybox, disk)
	if err != nil {
		return "", "", fmt.Errorf("node %s: image: %w", n.Name, err)
	}
	b, err := img.Bytes()
	if err != nil {
		return "", "", fmt.Errorf("node %s: image: %w", n.Name, err)
	}
	return images.Store(filepath.Join(tools.CacheDir, "images"), "cpio", b)
}

// collectConsole reads what a held guest wrote to its console since its
// last barrier.
func (n *node) collectConsole() (trace.Guest, error) {
	console, err := io.ReadAll(n.console)
	return trace.Guest{Name: n.spec.Name, Console: console}, err
}

// collect reads what a held guest produced since its last barrier. A page
// the guest was held inside of (busy) is left alone until a later barrier:
// then only the console is read, and the node is not done.
func (n *node) collect(epoch uint64) (trace.Guest, bool, error) {
	p := n.m.Page()
	if epoch == 0 && !p.Valid() {
		return trace.Guest{}, false, errors.New("agent did not initialise the shared page")
	}
	g, err := n.collectConsole()
	if err != nil {
		return g, false, err
	}
	if n.busy = p.Busy(); n.busy {
		g.MonoNS = p.MonoNS()
		return g, false, nil
	}
	console := g.Console
	// More: events or frames did not fit; the agent, woken, writes them
	// into the room this barrier makes.
	n.wake = n.wake || p.More()
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
	switch e.Kind {
	case wire.KindExit:
		code := e.Code
		j.Code = &code
		if !n.recordTest(e, epoch) { // a test's command runs many times (composer.go)
			n.exits[e.Proc] = int(e.Code)
			n.props.exited(n.spec.Name, e.Proc, epoch)
		}
	case wire.KindStart:
		// Started again (a kill fault's restart, a power cut's reboot):
		// an earlier exit no longer says how it ended.
		if !n.recordTest(e, epoch) {
			delete(n.exits, e.Proc)
			n.props.started(n.spec.Name, e.Proc)
		}
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
	case wire.KindSDK:
		who = strings.TrimPrefix(who+"/sdk", "/")
		data = n.props.observe(n.spec.Name, epoch, e)
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
		v := Verdict{Property: "exit:" + key, Status: "passed", Kind: "exit"}
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
		if v.Status == "failed" {
			v.FirstFailure = n.props.exitFailure(n.spec.Name, p.name, v.Message)
		}
		res.Verdicts = append(res.Verdicts, v)
	}
	n.testVerdicts(res) // composer.go
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
