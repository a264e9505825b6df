package cluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/detvm/detvm/scenario"
)

// A scenario without idle: warps only on a QEMU known to carry the race
// fix; anything else spins, and says why.
func TestIdleMode(t *testing.T) {
	for _, tc := range []struct {
		name, idle  string
		patched     string
		fixed       bool
		want        string
		warnMention string
	}{
		{"scenario says spin", scenario.IdleSpin, "/q", true, scenario.IdleSpin, ""},
		{"scenario says warp", scenario.IdleWarp, "", false, scenario.IdleWarp, ""},
		{"patched build present", "", "/cache/qemu/default/qemu-system-x86_64", true, scenario.IdleWarp, ""},
		{"no patched build", "", "", false, scenario.IdleSpin, "make setup"},
		{"DETVM_QEMU not a fixed build", "", "/usr/bin/qemu-system-x86_64", false, scenario.IdleSpin, "DETVM_QEMU=/usr/bin/qemu-system-x86_64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tools := Tools{QEMU: tc.patched, PatchedQEMU: tc.patched, RaceFixed: tc.fixed, CacheDir: "/cache"}
			if tc.patched == "" {
				tools.QEMU = "/usr/bin/qemu-system-x86_64"
			}
			if got := tools.IdleMode(&scenario.Scenario{Idle: tc.idle}); got != tc.want {
				t.Fatalf("IdleMode = %q, want %q", got, tc.want)
			}
			if tc.warnMention != "" {
				if w := tools.SpinWarning(); !strings.Contains(w, tc.warnMention) {
					t.Fatalf("SpinWarning() = %q, want it to mention %q", w, tc.warnMention)
				}
			}
		})
	}
}

func TestFixedBuild(t *testing.T) {
	for _, tc := range []struct {
		name, info string
		want       bool
	}{
		{"default", "detvm QEMU build\nvariant:   default\nkey: x\n", true},
		{"vcpu-warp", "variant:   vcpu-warp\n", true},
		{"race-widened fix", "variant:   race-widened\n", true},
		{"stock", "variant:   stock\n", false},
		{"stock race-widened", "variant:   stock,race-widened\n", false},
		{"no variant line", "detvm QEMU build\n", false},
		{"no build-info.txt", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.info != "" {
				if err := os.WriteFile(filepath.Join(dir, "build-info.txt"), []byte(tc.info), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if got := fixedBuild(filepath.Join(dir, "qemu-system-x86_64")); got != tc.want {
				t.Fatalf("fixedBuild = %v, want %v", got, tc.want)
			}
		})
	}
}
