package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/detvm/detvm/internal/atomicfile"

	"github.com/detvm/detvm/snapshot"
	"github.com/detvm/detvm/trace"
	"github.com/detvm/detvm/vmm"
)

// Warm start: the first run of a cluster saves it at its first barrier,
// when every agent is ready and before the run seed is written, into a
// store in the cache. Later runs of the same cluster (same kernel, images,
// memory, QEMU, plugin) restore that state instead of booting, then write
// their seed exactly where a cold boot does: into the page, before the
// guests run on. The guest cannot tell the difference, so a warm run has
// the cold run's trace hash (the determinism tests check this: their
// first run boots, the later ones start warm).

// warmKey identifies everything that shapes the guests up to their first
// barrier.
func (r *runner) warmKey() (string, error) {
	h := sha256.New()
	qemuSum, err := FileSHA256(r.tools.QEMU)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(h, "detvm-warm-v1\nkernel %s\nqemu %s %s\nplugin %s\n", r.res.Kernel, r.qemuV, qemuSum, vmm.PluginSourceHash())
	for _, n := range r.nodes {
		fmt.Fprintf(h, "node %s %s %d\n", n.spec.Name, r.res.Images[n.spec.Name], n.spec.Memory)
		// And the machine: its command line is code (vmm), not input, so
		// a build that changes the kernel command line or a device must
		// not start from guests booted with the old one. The files in it
		// are named by content above; their paths vary by run.
		c := n.cfg
		c.QEMU, c.BIOS, c.Kernel, c.Initrd, c.Plugin, c.Shared, c.Console = "qemu", "bios", "kernel", "initrd", "plugin", "shared", "console"
		if c.Disk != "" {
			c.Disk = "disk"
		}
		c.DiskImage, c.Incoming = "", false
		fmt.Fprintf(h, "argv %q\n", c.CommandLine())
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (r *runner) warmDir() string { return filepath.Join(r.tools.CacheDir, "warm") }

func (r *runner) warmOrBoot(ctx context.Context) error {
	if r.opt.Cold || r.opt.NoBarrier {
		return r.boot(ctx)
	}
	key, err := r.warmKey()
	if err != nil {
		return Infra("warm start: %v", err)
	}
	index := filepath.Join(r.warmDir(), "index", key)
	id, err := os.ReadFile(index)
	if err != nil {
		r.warmSave = key // boot, and save the cluster at its first barrier
		return r.boot(ctx)
	}
	t0 := time.Now()
	st, err := snapshot.Open(r.warmDir())
	if err == nil {
		var cs *ctlState
		_, cs, err = r.load(ctx, st, string(id), func() {
			for _, n := range r.nodes {
				n.m.Page().SetSeed(r.opt.Seed)
			}
		})
		if err == nil {
			// The cached cluster was saved by a run with another seed.
			r.sw.SetSeed(r.opt.Seed)
			// The cold boot's line for epoch 0, which a replay checks too.
			var l trace.Line
			if l, err = trace.ParseLine(cs.TraceLine); err != nil {
				return Infra("warm start %s: trace line: %v", id, err)
			}
			fmt.Fprintln(r.traceW, cs.TraceLine)
			if err := r.expect(l); err != nil {
				return err
			}
			r.res.WarmStart = true
			r.res.BootWallMS = time.Since(t0).Milliseconds()
			r.logf("warm start: %d guest(s) ready in %d ms (cached boot %.12s)", len(r.nodes), r.res.BootWallMS, id)
			return nil
		}
	}
	// A damaged cache is not the run's problem: boot, and save anew.
	r.logf("warm start failed, booting instead: %v", err)
	os.Remove(index)
	r.stopAll()
	r.warmSave = key
	return r.boot(ctx)
}

// stopAll kills every started guest, leaving the nodes ready to start again.
func (r *runner) stopAll() {
	for _, n := range r.nodes {
		if n.m != nil {
			n.m.Kill()
			n.m = nil
		}
		if n.console != nil {
			n.console.Close()
			n.console = nil
		}
	}
	r.chain = r.chain0
	r.startEpoch = 0
}

// saveWarm saves the cluster, held at its first barrier with the page set
// for epoch 1 but no seed yet, writes the seed, and lets it run on. Any
// failure only costs the next run its warm start.
func (r *runner) saveWarm(ctx context.Context, traceLine string) error {
	t0 := time.Now()
	paths, err := r.pauseAndSave(ctx, 0)
	if err != nil {
		return err
	}
	defer os.RemoveAll(filepath.Dir(paths[0]))
	for _, n := range r.nodes {
		n.m.Page().SetSeed(r.opt.Seed)
	}
	state, err := json.Marshal(r.ctlState(0, traceLine)) // before release clears the wakes
	if err := r.each(func(n *node) error { return n.m.Cont(ctx) }); err != nil {
		return Infra("warm start save: %v", err)
	}
	if err := r.releaseHeld(); err != nil {
		return err
	}
	var st *snapshot.Store
	if err == nil {
		st, err = snapshot.Open(r.warmDir())
	}
	if err == nil {
		m := &snapshot.Manifest{Epoch: 0, Scenario: r.s.Name, Kernel: r.res.Kernel, Images: r.res.Images, QEMU: r.qemuV, State: state}
		if m, err = st.Put(m, paths); err == nil {
			index := filepath.Join(r.warmDir(), "index", r.warmSave)
			if err = os.MkdirAll(filepath.Dir(index), 0o755); err == nil {
				err = atomicfile.Write(index, []byte(m.ID), 0o644)
			}
		}
	}
	if err != nil {
		r.logf("could not save the warm start (the next run boots again): %v", err)
		return nil
	}
	r.logf("saved the booted cluster for warm starts in %d ms", time.Since(t0).Milliseconds())
	return nil
}
