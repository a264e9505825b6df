package cluster_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/detvm/detvm/cluster"
	"github.com/detvm/detvm/internal/testenv"
	"github.com/detvm/detvm/scenario"
	"github.com/detvm/detvm/vmm"
)

// TestQMPWhileHeld: the monitor answers while the vCPU is held in the
// plugin's barrier (idle mode spin), and stop follows the send → release →
// wait order: sent while held it cannot complete until the barrier is
// released. (A guest QEMU holds stops at once: the snapshot tests in idle
// mode warp cover that.)
func TestQMPWhileHeld(t *testing.T) {
	tools := testenv.Tools(t)
	s, err := scenario.Load(testenv.Example(t, "hello"))
	if err != nil {
		t.Fatal(err)
	}
	s.Idle = scenario.IdleSpin // an image whose agent executes the barrier
	kern, err := tools.Kernel()
	if err != nil {
		t.Fatal(err)
	}
	initrd, _, err := cluster.BuildImage(s, &s.Nodes[0], kern, tools)
	if err != nil {
		t.Fatal(err)
	}
	plugin, err := vmm.BuildPlugin(filepath.Join(tools.CacheDir, "plugin"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	m, err := vmm.Start(ctx, vmm.Config{Name: "node-1", QEMU: tools.QEMU, BIOS: tools.BIOS, Kernel: kern.Vmlinux,
		Initrd: initrd, MemoryMiB: 256, Plugin: plugin, Shared: filepath.Join(dir, "shared"), Console: filepath.Join(dir, "console.log")})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Kill()
	if err := m.WaitBarrier(2 * time.Minute); err != nil {
		b, _ := os.ReadFile(filepath.Join(dir, "console.log"))
		t.Fatalf("%v; console:\n%s", err, b)
	}
	// Held: QMP lives in QEMU's main loop and still answers.
	if st, err := m.Status(ctx); err != nil || st != "running" {
		t.Fatalf("query-status while held = %q, %v", st, err)
	}
	wait, err := m.QMP().Send("stop", nil)
	if err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	_, err = wait(short)
	cancelShort()
	if err == nil {
		t.Fatal("stop completed while the vCPU was held: the send → release → wait order would be unnecessary")
	}
	// The stop above is still pending; releasing lets it complete. As the
	// driver does, set the next epoch first: the guest's next barrier is
	// then far away (here 1 s of virtual time, a generous margin for the
	// main loop to act on the stop; see PauseHeld's known race).
	m.Page().SetEpoch(1000)
	if err := m.Release(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := m.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st == "paused" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %q after release, want paused", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := m.QMP().Execute(ctx, "cont", nil); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitBarrier(time.Minute); err != nil {
		t.Fatalf("guest did not reach its next barrier after cont: %v", err)
	}
	// And the helper that does it in one call.
	m.Page().SetEpoch(2000)
	if err := m.PauseHeld(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := m.Status(ctx); st != "paused" {
		t.Fatalf("after PauseHeld: %q", st)
	}
	// Pausing with the next barrier only one epoch away, as a snapshot
	// does, many times and under a host CPU hog: the pause must always
	// land before that barrier (BeginPause waits for QEMU's main loop to
	// be inside the pause before it releases the guest).
	if _, err := m.QMP().Execute(ctx, "cont", nil); err != nil {
		t.Fatal(err)
	}
	hog(t)
	for e := uint64(2000); e < 2030; e++ {
		if err := m.WaitBarrier(time.Minute); err != nil {
			t.Fatalf("epoch %d: %v", e, err)
		}
		m.Page().SetEpoch(e + 1)
		if err := m.PauseHeld(ctx); err != nil {
			t.Fatalf("pause at epoch %d: %v", e, err)
		}
		if err := m.Cont(ctx); err != nil {
			t.Fatal(err)
		}
	}
}
