package cluster

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/detvm/detvm/scenario"
	"github.com/detvm/detvm/vmm"
)

// TestWarmKey: the key of the cached post-boot snapshot follows what
// shapes a guest's boot, the machine's command line included, and not the
// run's own paths.
func TestWarmKey(t *testing.T) {
	dir := t.TempDir()
	qemu := filepath.Join(dir, "qemu")
	if err := os.WriteFile(qemu, []byte("qemu"), 0o755); err != nil {
		t.Fatal(err)
	}
	key := func(edit func(c *vmm.Config)) string {
		t.Helper()
		c := vmm.Config{Name: "node-1", QEMU: qemu, BIOS: "/b", Kernel: "/k", Initrd: "/i", Plugin: "/p",
			Shared: "/run/a/shared", Console: "/run/a/console.log", MemoryMiB: 256}
		edit(&c)
		r := &runner{tools: Tools{QEMU: qemu}, res: &Result{Images: map[string]string{"node-1": "img"}},
			nodes: []*node{{spec: &scenario.Node{Name: "node-1", Memory: 256}, cfg: c}}}
		k, err := r.warmKey()
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	base := key(func(*vmm.Config) {})
	if k := key(func(c *vmm.Config) { c.Shared, c.Console = "/run/b/shared", "/run/b/console.log" }); k != base {
		t.Error("the run directory changed the key")
	}
	if k := key(func(c *vmm.Config) { c.Append = vmm.DefaultAppend + " nolapic" }); k == base {
		t.Error("the kernel command line did not change the key")
	}
	if k := key(func(c *vmm.Config) { c.Disk, c.DiskBytes = "/run/a/disk", 64<<20 }); k == base {
		t.Error("a disk did not change the key")
	}
}
