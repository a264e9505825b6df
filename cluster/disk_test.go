package cluster_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/detvm/detvm/cluster"
	"github.com/detvm/detvm/images"
	"github.com/detvm/detvm/internal/testenv"
	"github.com/detvm/detvm/scenario"
)

// diskScript writes a file and fsyncs it, then writes another without
// syncing, and shows both and the mount.
const diskScript = `set -e
echo kept > /data/kept
sync /data/kept
echo lost > /data/lost
cat /data/kept /data/lost
grep ' /data ' /proc/mounts`

// TestDisk: a node's disk is ext4 on /dev/pmem0 at /data. What the guest
// fsynced is in the run's disk.img once the run ends; what it only wrote
// is not (the guest's page cache dies with it, as in a power cut). Run
// again (from the warm start, when the first run saved one), the trace is
// the same: the disk is part of the deterministic guest, and of its
// snapshots.
func TestDisk(t *testing.T) {
	tools := testenv.Tools(t)
	s := &scenario.Scenario{Name: "disk", Seed: 1, Duration: 20e9, Epoch: 1e6,
		Nodes: []scenario.Node{{Name: "node-1", Binary: tools.Busybox, Args: []string{"sh", "-c", diskScript},
			Disk: &scenario.Disk{Size: 64 << 20, Mount: "/data"}}}}
	a, err := cluster.Run(context.Background(), s, tools, cluster.Options{Seed: 1, RunDir: filepath.Join(t.TempDir(), "run")})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("trace %s, %d epochs, %d ms wall (boot %d ms, warm %v)", a.TraceHash[:16], a.Epochs, a.WallMS, a.BootWallMS, a.WarmStart)
	out, _ := os.ReadFile(filepath.Join(a.RunDir, "node-1", "output.log"))
	if a.Failed() || a.Ended != "all-exited" {
		t.Fatalf("run failed (ended %s): %+v\n%s", a.Ended, a.Verdicts, out)
	}
	for _, want := range []string{"busybox/stdout: kept", "busybox/stdout: lost", "busybox/stdout: /dev/pmem0 /data ext4 rw,"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output.log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "dax=always") {
		t.Errorf("the disk is mounted with DAX, which bypasses the page cache:\n%s", out)
	}
	checkDiskFile(t, filepath.Join(a.RunDir, "node-1", "disk.img"))

	// The same run again: warm if the first one saved its boot, else it
	// boots and saves it, and a third one starts warm.
	b := run(t, tools, s, 1)
	if !b.WarmStart {
		b = run(t, tools, s, 1)
	}
	if !b.WarmStart || b.TraceHash != a.TraceHash {
		_, detail, _, _ := cluster.CompareRuns(a.RunDir, b.RunDir)
		t.Errorf("run from the warm start (warm %v): trace %s, first run %s: %s", b.WarmStart, b.TraceHash, a.TraceHash, detail)
	}
}

// checkDiskFile replays the journal of a copy of disk.img with e2fsck and
// looks for the two files with debugfs.
func checkDiskFile(t *testing.T, disk string) {
	t.Helper()
	tool := func(name string) string {
		for _, p := range []string{"/usr/sbin/" + name, "/sbin/" + name} {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
		return ""
	}
	fsck, debugfs := tool("e2fsck"), tool("debugfs")
	if fsck == "" || debugfs == "" {
		t.Log("e2fsck or debugfs (e2fsprogs) not installed: disk.img not checked")
		return
	}
	cp := filepath.Join(t.TempDir(), "disk.img")
	if err := images.CopySparse(cp, disk); err != nil {
		t.Fatal(err)
	}
	// Exit 1: errors corrected, which a journal replay may count as.
	if out, err := exec.Command(fsck, "-fy", cp).CombinedOutput(); err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() > 1 {
			t.Fatalf("e2fsck: %v\n%s", err, out)
		}
	}
	if out, err := exec.Command(debugfs, "-R", "cat /kept", cp).Output(); err != nil || string(out) != "kept\n" {
		t.Errorf("fsynced /kept on the disk: %q, %v; want \"kept\\n\"", out, err)
	}
	out, _ := exec.Command(debugfs, "-R", "stat /lost", cp).CombinedOutput()
	if !strings.Contains(string(out), "not found") {
		t.Errorf("unsynced /lost reached the disk:\n%s", out)
	}
}
