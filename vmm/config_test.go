package vmm

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

func testConfig(t *testing.T) Config {
	dir := t.TempDir()
	touch := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return Config{
		Name: "node-1", QEMU: touch("qemu"), BIOS: touch("qboot.rom"), Kernel: touch("vmlinux"),
		Initrd: touch("initrd"), Plugin: touch("barrier.so"), MemoryMiB: 256,
		Shared: filepath.Join(dir, "shared"), Console: filepath.Join(dir, "console.log"),
	}
}

// TestCommandLineGolden pins QEMU's argv: every flag here is part of what
// makes a guest deterministic, so a change must be deliberate (-update).
func TestCommandLineGolden(t *testing.T) {
	c := Config{
		Name: "node-1", QEMU: "/usr/bin/qemu-system-x86_64", BIOS: "/usr/share/qemu/qboot.rom",
		Kernel: "/cache/vmlinux", Initrd: "/cache/img.cpio", Plugin: "/cache/barrier.so", MemoryMiB: 256,
		Shared: "/run/node-1/shared", Console: "/run/node-1/console.log",
	}
	got := commandLineGolden(t, c, "cmdline.golden")
	for _, flag := range []string{"shift=0,sleep=off,align=off", "max,-rdrand,-rdseed", "clock=vm,base=" + DefaultRTCBase, "master=on"} {
		if !strings.Contains(got, flag) {
			t.Errorf("deterministic flag %q missing", flag)
		}
	}
}

// commandLineGolden returns c's command line, one argument a line, and
// fails t unless it is testdata/name (which -update rewrites).
func commandLineGolden(t *testing.T, c Config, name string) string {
	t.Helper()
	got := strings.Join(c.CommandLine(), "\n") + "\n"
	golden := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Fatalf("command line changed (rerun with -update if on purpose):\n got:\n%s\nwant:\n%s", got, want)
	}
	return got
}

// TestCommandLineDiskGolden pins the NVDIMM flags of a guest with a disk;
// TestCommandLineGolden shows that a guest without one is unchanged.
func TestCommandLineDiskGolden(t *testing.T) {
	c := Config{
		Name: "node-1", QEMU: "/usr/bin/qemu-system-x86_64", BIOS: "/usr/share/qemu/qboot.rom",
		Kernel: "/cache/vmlinux", Initrd: "/cache/img.cpio", Plugin: "/cache/barrier.so", MemoryMiB: 256,
		Shared: "/run/node-1/shared", Console: "/run/node-1/console.log",
		Disk: "/run/node-1/disk.img", DiskBytes: 64 << 20, DiskImage: "/cache/disks/ext4-64M.img",
	}
	got := commandLineGolden(t, c, "cmdline-disk.golden")
	for _, flag := range []string{
		"pc,accel=tcg,nvdimm=on",
		"256M,slots=1,maxmem=320M",
		"memory-backend-file,id=disk0,share=on,mem-path=/run/node-1/disk.img,size=67108864",
		"nvdimm,memdev=disk0,id=nvdimm0",
	} {
		if !strings.Contains(got, "\n"+flag+"\n") {
			t.Errorf("disk flag %q missing", flag)
		}
	}
}

// TestCommandLineHoldGolden pins a guest QEMU holds (idle mode warp): no
// plugin, the wake port as second serial port, and the hold configured in
// the environment.
func TestCommandLineHoldGolden(t *testing.T) {
	c := Config{
		Name: "node-1", QEMU: "/usr/bin/qemu-system-x86_64", BIOS: "/usr/share/qemu/qboot.rom",
		Kernel: "/cache/vmlinux", Initrd: "/cache/img.cpio", HoldNS: 1e6, MemoryMiB: 256,
		Shared: "/run/node-1/shared", Console: "/run/node-1/console.log",
	}
	got := commandLineGolden(t, c, "cmdline-hold.golden")
	if strings.Contains(got, "-plugin") {
		t.Error("a held guest has no barrier plugin")
	}
	if !strings.Contains(got, "\n-serial\nchardev:console\n") || !strings.HasSuffix(got, "-serial\nchardev:detvm-wake\n") {
		t.Error("want the console on ttyS0 and the wake port on ttyS1")
	}
	if env := strings.Join(c.Env(), " "); env != "DETVM_HOLD_FD=4 DETVM_HOLD_NS=1000000" {
		t.Errorf("Env() = %q", env)
	}
	c.HoldNS = 0
	if c.Env() != nil {
		t.Error("a guest with the plugin's barrier needs no environment")
	}
}

// TestPrepareDisk: a booting machine's disk is a copy of the image, an
// incoming one's is zeros whatever the file held.
func TestPrepareDisk(t *testing.T) {
	c := testConfig(t)
	dir := t.TempDir()
	c.Disk, c.DiskBytes, c.DiskImage = filepath.Join(dir, "disk.img"), DiskAlign, filepath.Join(dir, "pristine.img")
	img := make([]byte, DiskAlign)
	copy(img[4096:], "superblock")
	if err := os.WriteFile(c.DiskImage, img, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (&Machine{cfg: c}).prepareDisk(); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(c.Disk); err != nil || string(got) != string(img) {
		t.Fatalf("booting: disk is not the image (%v)", err)
	}
	c.Incoming = true
	if err := (&Machine{cfg: c}).prepareDisk(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(c.Disk)
	if err != nil || len(got) != DiskAlign || strings.Trim(string(got), "\x00") != "" {
		t.Fatalf("incoming: disk is not %d zero bytes (%d bytes, %v)", DiskAlign, len(got), err)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mut  func(*Config)
		want string // substring of the error; "" for none
	}{
		{"ok", func(*Config) {}, ""},
		{"no name", func(c *Config) { c.Name = "" }, "Name is empty"},
		{"no kernel", func(c *Config) { c.Kernel = "" }, "node-1: config: Kernel is empty"},
		{"missing qemu", func(c *Config) { c.QEMU = "/nonexistent/qemu" }, "QEMU: stat /nonexistent/qemu"},
		{"memory", func(c *Config) { c.MemoryMiB = 8 }, "MemoryMiB 8 out of range"},
		{"no console", func(c *Config) { c.Console = "" }, "Console paths are required"},
		{"no plugin", func(c *Config) { c.Plugin = "" }, "config: Plugin is empty"},
		{"held, no plugin", func(c *Config) { c.Plugin, c.HoldNS = "", 1e6 }, ""},
		{"disk without size", func(c *Config) { c.Disk = c.Shared + ".disk" }, "DiskBytes 0 is not a positive multiple of 2 MiB"},
		{"disk size unaligned", func(c *Config) { c.Disk, c.DiskBytes = c.Shared+".disk", 3<<20 }, "DiskBytes 3145728 is not a positive multiple"},
		{"disk missing", func(c *Config) { c.Disk, c.DiskBytes = c.Shared+".disk", 2<<20 }, "config: Disk: stat"},
		{"disk image missing", func(c *Config) { c.Disk, c.DiskBytes, c.DiskImage = c.Shared+".disk", 2<<20, "/nonexistent/img" }, "config: DiskImage: stat /nonexistent/img"},
		{"disk image size", func(c *Config) { c.Disk, c.DiskBytes, c.DiskImage = c.Shared+".disk", 2<<20, c.QEMU }, "is 0 bytes, not DiskBytes (2097152)"},
		{"disk incoming", func(c *Config) { c.Disk, c.DiskBytes, c.Incoming = c.Shared+".disk", 2<<20, true }, ""},
		{"size without disk", func(c *Config) { c.DiskBytes = 2 << 20 }, "without a Disk file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig(t)
			tc.mut(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
