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
	got := strings.Join(c.CommandLine(), "\n") + "\n"
	golden := filepath.Join("testdata", "cmdline.golden")
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
	for _, flag := range []string{"shift=0,sleep=off,align=off", "max,-rdrand,-rdseed", "clock=vm,base=" + DefaultRTCBase, "master=on"} {
		if !strings.Contains(got, flag) {
			t.Errorf("deterministic flag %q missing", flag)
		}
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
