package replay

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/detvm/detvm/cluster"
	"github.com/detvm/detvm/faults"
	"github.com/detvm/detvm/scenario"
	"github.com/detvm/detvm/vmm"
)

// Outcome is what a replay found.
type Outcome struct {
	Match      bool              `json:"match"`
	Failed     bool              `json:"failed"` // the replayed run failed a property (as the original did, when Match)
	TraceHash  string            `json:"trace_hash,omitempty"`
	Expected   string            `json:"expected_trace_hash"`
	Epoch      uint64            `json:"diverged_epoch,omitempty"`
	Guest      string            `json:"diverged_guest,omitempty"`
	What       string            `json:"diverged,omitempty"`
	Event      string            `json:"diverged_event,omitempty"`
	RunDir     string            `json:"run_dir"`
	Verdicts   []cluster.Verdict `json:"verdicts,omitempty"`
	WallMS     int64             `json:"wall_ms,omitempty"`
	FromSnap   string            `json:"from_snapshot,omitempty"`
	Portable   bool              `json:"portable"`
	Scenario   string            `json:"scenario"`
	Segments   int               `json:"segments"`
	Originally bool              `json:"original_failed"`
}

// Options for a replay.
type Options struct {
	RunDir string    // created; receives the replayed run
	Log    io.Writer // progress for a person
	Store  string    // overrides the snapshot store recorded in the bundle
}

// Replay re-executes the bundle at path and checks it epoch by epoch. An
// environment that differs from the recorded one is an *cluster.InfraError
// naming every difference, before anything runs.
func Replay(ctx context.Context, path string, tools cluster.Tools, opt Options) (*Outcome, error) {
	dir := filepath.Join(opt.RunDir, "bundle")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	b, err := Open(path, dir)
	if err != nil {
		return nil, cluster.Infra("%v", err)
	}
	out := &Outcome{Expected: b.TraceHash, RunDir: opt.RunDir, Portable: b.Portable, Scenario: b.Scenario.Name,
		Segments: len(b.Segments), Originally: b.Failed}
	if len(b.Segments) == 0 {
		return nil, cluster.Infra("%s: bundle has no seed segments", path)
	}
	s, runOpt, err := prepare(b, dir, tools, opt)
	if err != nil {
		return nil, err
	}
	expect, err := cluster.ReadTrace(dir)
	if err != nil {
		return nil, cluster.Infra("%s: trace.log: %v", path, err)
	}
	runOpt.Expect = expect
	if b.From != nil {
		out.FromSnap = b.From.ID
	}
	res, err := cluster.Run(ctx, s, tools, runOpt)
	var de *cluster.DivergenceError
	switch {
	case errors.As(err, &de):
		out.Epoch, out.Guest, out.What = de.Epoch, de.Guest, de.What
		if de.Guest != "" {
			out.Event, _ = cluster.EventDiff(filepath.Join(dir, "events", de.Guest+".jsonl"), filepath.Join(opt.RunDir, de.Guest, "events.jsonl"), de.Epoch)
		}
		return out, nil
	case err != nil:
		return nil, err
	}
	out.TraceHash, out.Verdicts, out.Failed, out.WallMS = res.TraceHash, res.Verdicts, res.Failed(), res.WallMS
	out.Match = res.TraceHash == b.TraceHash
	if !out.Match {
		out.What = fmt.Sprintf("trace hash %s, recorded %s", res.TraceHash, b.TraceHash)
	}
	return out, nil
}

// prepare loads the scenario and images the bundle names and checks the
// environment against the recorded one.
func prepare(b *Bundle, dir string, tools cluster.Tools, opt Options) (*scenario.Scenario, cluster.Options, error) {
	ro := cluster.Options{Seed: b.Segments[0].Seed, RunDir: opt.RunDir, Log: opt.Log, Images: map[string]string{}}
	var diffs []string
	differ := func(what, recorded, now string) {
		if recorded != now {
			diffs = append(diffs, fmt.Sprintf("%s: recorded %s, here %s", what, short(recorded), short(now)))
		}
	}
	if f := b.Faults; f != nil {
		var err error
		if f.Builtin != "" {
			spec, ok := faults.Builtin(f.Builtin)
			if !ok {
				return nil, ro, cluster.Infra("bundle: unknown built-in fault policy %q (recorded by a newer detvm?)", f.Builtin)
			}
			ro.Faults = spec
		} else if ro.Faults, err = faults.Load(filepath.Join(dir, "faults.yaml")); err != nil {
			return nil, ro, cluster.Infra("bundle: %v", err)
		}
	}
	var s *scenario.Scenario
	var err error
	if b.Portable {
		yaml, err := os.ReadFile(filepath.Join(dir, "scenario.yaml"))
		if err != nil {
			return nil, ro, cluster.Infra("bundle: scenario.yaml: %v", err)
		}
		if s, err = scenario.Parse(yaml, b.Scenario.Path); err != nil {
			return nil, ro, err
		}
		ro.Kernel = filepath.Join(dir, "kernel", "vmlinux")
		for n := range b.Env.Images {
			ro.Images[n] = filepath.Join(dir, "images", n+".cpio")
		}
	} else {
		yaml, rerr := os.ReadFile(b.Scenario.Path)
		if rerr != nil {
			return nil, ro, cluster.Infra("the bundle is not portable and its scenario %s is not readable here (%v): replay on the machine that ran it, or record a --portable bundle", b.Scenario.Path, rerr)
		}
		differ("scenario "+b.Scenario.Path, b.Scenario.SHA256, sha(yaml))
		if s, err = scenario.Load(b.Scenario.Path); err != nil {
			return nil, ro, err
		}
		if err := s.Complete(); err != nil {
			return nil, ro, err
		}
		kern, err := tools.Kernel()
		if err != nil {
			return nil, ro, err
		}
		ro.Kernel = kern.Vmlinux
		for _, g := range s.Guests() {
			p, _, err := cluster.BuildImage(s, g, kern, tools)
			if err != nil {
				return nil, ro, err
			}
			ro.Images[g.Name] = p
		}
		agent, err := cluster.FileSHA256(tools.Agent)
		if err != nil {
			return nil, ro, cluster.Infra("agent: %v", err)
		}
		differ("guest agent "+tools.Agent, b.Env.Agent, agent)
	}
	// The recorded idle mode is an input of the run, like its seed.
	if b.Env.Idle != "" {
		s.Idle = b.Env.Idle
	} else if s.Idle == "" {
		s.Idle = scenario.IdleSpin // bundles from before idle modes: guests spun
	}
	if err := s.Complete(); err != nil {
		return nil, ro, err
	}
	qemu, err := tools.QEMUFor(s.Idle)
	if err != nil {
		return nil, ro, err
	}
	kernSum, err := cluster.FileSHA256(ro.Kernel)
	if err != nil {
		return nil, ro, cluster.Infra("kernel: %v", err)
	}
	differ("kernel", b.Env.Kernel, kernSum)
	for _, g := range s.Guests() {
		p, ok := ro.Images[g.Name]
		if !ok {
			diffs = append(diffs, "node "+g.Name+": not in the bundle")
			continue
		}
		sum, err := cluster.FileSHA256(p)
		if err != nil {
			return nil, ro, cluster.Infra("node %s image: %v", g.Name, err)
		}
		differ("node "+g.Name+" image", b.Env.Images[g.Name], sum)
	}
	qv, err := cluster.QEMUVersion(qemu)
	if err != nil {
		return nil, ro, err
	}
	differ("QEMU version", b.Env.QEMUVersion, qv)
	qs, err := cluster.FileSHA256(qemu)
	if err != nil {
		return nil, ro, cluster.Infra("QEMU: %v", err)
	}
	differ("QEMU binary "+qemu, b.Env.QEMUSHA256, qs)
	differ("barrier plugin source", b.Env.Plugin, vmm.PluginSourceHash())
	for _, g := range s.Guests() {
		// The command line this detvm would use, normalised like the
		// recorded one: flags that changed show up here.
		cfg := vmm.Config{Name: g.Name, QEMU: qemu, BIOS: tools.BIOS, Kernel: ro.Kernel, Initrd: ro.Images[g.Name],
			MemoryMiB: g.Memory, Plugin: "/p", HoldNS: holdNS(s), Shared: filepath.Join(opt.RunDir, g.Name, "shared"), Console: filepath.Join(opt.RunDir, g.Name, "console.log")}
		now := normalize(cfg.CommandLine(), opt.RunDir)
		for i := range now {
			if strings.HasPrefix(now[i], "/p,") {
				now[i] = "$PLUGIN," + strings.TrimPrefix(now[i], "/p,")
			}
		}
		differ("node "+g.Name+" QEMU command line", strings.Join(b.Env.Argv[g.Name], " "), strings.Join(now, " "))
	}
	if b.From != nil {
		ro.Store, ro.From = b.From.Store, b.From.ID
		if opt.Store != "" {
			ro.Store = opt.Store
		}
		if _, err := os.Stat(ro.Store); err != nil {
			diffs = append(diffs, fmt.Sprintf("snapshot store %s (the run continued snapshot %s): %v; pass --store DIR with a copy of it", ro.Store, b.From.ID, err))
		}
		if b.From.Branch != nil {
			ro.Branch, ro.BranchSeed = true, *b.From.Branch
		}
	}
	if len(diffs) > 0 {
		return nil, ro, cluster.Infra("refusing to replay: this environment differs from the recorded one:\n  %s", strings.Join(diffs, "\n  "))
	}
	return s, ro, nil
}

func short(h string) string {
	if len(h) == 64 {
		return h[:16]
	}
	return h
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// holdNS is the vmm.Config.HoldNS a run of s uses: guests that halt (idle
// mode warp) are held by QEMU at every epoch boundary.
func holdNS(s *scenario.Scenario) uint64 {
	if s.Idle == scenario.IdleWarp {
		return uint64(s.Epoch)
	}
	return 0
}
