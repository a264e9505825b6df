package cluster_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/detvm/detvm/cluster"
	"github.com/detvm/detvm/internal/testenv"
	"github.com/detvm/detvm/scenario"
)

// TestIdleWarp: with detvm's patched QEMU, guests that halt between
// heartbeats (idle mode warp, no spinner) are deterministic, also under a
// host CPU hog: this is what the stock QEMU's warp race broke (DESIGN.md).
// The spin run is logged for comparison of speed only.
func TestIdleWarp(t *testing.T) {
	tools := testenv.Tools(t)
	if tools.PatchedQEMU == "" {
		t.Skip("detvm's patched QEMU is not built; `make setup` builds it")
	}
	s, err := scenario.Load(filepath.Join(testenv.RepoRoot(), "examples/idle/short.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Idle != scenario.IdleWarp {
		t.Fatalf("examples/idle/short.yaml: idle %q, want warp", s.Idle)
	}
	a := run(t, tools, s, 1)
	if a.Failed() || a.Ended != "all-exited" || a.Idle != "warp" || a.QEMU != tools.PatchedQEMU {
		t.Fatalf("idle warp run: ended %s, idle %s, qemu %s, verdicts %+v", a.Ended, a.Idle, a.QEMU, a.Verdicts)
	}
	t.Run("under-cpu-hog", func(t *testing.T) {
		hog(t)
		if b := run(t, tools, s, 1); b.TraceHash != a.TraceHash {
			_, detail, _, _ := cluster.CompareRuns(a.RunDir, b.RunDir)
			t.Errorf("halting guests diverged under load: %s", detail)
		}
	})
	spin := *s
	spin.Idle = scenario.IdleSpin
	c, err := cluster.Run(context.Background(), &spin, tools, cluster.Options{Seed: 1, RunDir: filepath.Join(t.TempDir(), "spin")})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("virtual s per wall s: warp %.3f, spin %.3f", a.Perf.VirtualPerWall, c.Perf.VirtualPerWall)
}
