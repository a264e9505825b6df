package main

import (
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/detvm/detvm/cluster"
	"github.com/detvm/detvm/images"
	"github.com/detvm/detvm/scenario"
	"github.com/detvm/detvm/vmm"
)

func doctorCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "doctor",
		Short:   "Check that this machine can run detvm, and say how to fix what is missing",
		Example: "  detvm doctor",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			bad := 0
			check := func(what string, err error, ok string) {
				if err != nil {
					bad++
					fmt.Printf("FAIL  %-14s %v\n", what, err)
					return
				}
				fmt.Printf("ok    %-14s %s\n", what, ok)
			}
			tools, lerr := cluster.Locate()
			qemu := tools.QEMU
			if qemu == "" {
				qemu = "qemu-system-x86_64"
			}
			qv, err := cluster.QEMUVersion(qemu)
			check("qemu", err, qemu+" "+qv)
			if tools.PatchedQEMU != "" {
				pv, err := cluster.QEMUVersion(tools.PatchedQEMU)
				mode := "(idle mode warp, the default)"
				if !tools.RaceFixed {
					mode = "(used for --idle warp only: not a detvm build with the race fix, so idle guests spin by default)"
				}
				if err == nil && !cluster.HoldBuild(tools.PatchedQEMU) {
					err = fmt.Errorf("built without the hold patch (0004), which --idle warp needs: run `make setup`")
				}
				check("qemu-patched", err, tools.PatchedQEMU+" "+pv+" "+mode)
			} else {
				fmt.Println("note  qemu-patched: not built, so idle guests spin (slower); `make setup` builds it (needed for --idle warp, the default when present)")
			}
			_, err = os.Stat(tools.BIOS)
			check("qboot", err, tools.BIOS)
			check("busybox", staticELF(tools.Busybox), tools.Busybox+" (static)")
			check("agent", staticELF(tools.Agent), tools.Agent+" (static)")
			so, err := vmm.BuildPlugin(filepath.Join(tools.CacheDir, "plugin"))
			check("plugin", err, so)
			k, err := tools.Kernel()
			if err == nil {
				check("kernel", nil, k.Version+" "+k.Vmlinux)
			} else {
				check("kernel", err, "")
			}
			if bad > 0 || lerr != nil {
				fmt.Println("\nfix: run `make setup` (as root), then `make build`")
				return exitError{exitInfra}
			}
			return nil
		},
	}
}

func staticELF(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked; guests need a static build", path)
		}
	}
	return nil
}

func imageCmd() *cobra.Command {
	img := &cobra.Command{Use: "image", Short: "Build and inspect guest images"}
	img.AddCommand(&cobra.Command{
		Use:     "build SCENARIO",
		Short:   "Build every node's initramfs (content-addressed) and print its hash",
		Example: "  detvm image build examples/etcd-single/scenario.yaml",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := scenario.Load(args[0])
			if err != nil {
				return usageError{err}
			}
			tools, err := cluster.Locate()
			if err != nil {
				return err
			}
			kern, err := tools.Kernel()
			if err != nil {
				return err
			}
			for _, g := range s.Guests() {
				path, sum, err := cluster.BuildImage(s, g, kern, tools)
				if err != nil {
					return err
				}
				st, _ := os.Stat(path)
				fmt.Printf("%s  sha256:%s  %d bytes  %s\n", g.Name, sum, st.Size(), path)
			}
			return nil
		},
	})
	return img
}

func benchCmd() *cobra.Command {
	b := &cobra.Command{Use: "bench", Short: "Measure detvm on this machine"}
	var n int
	boot := &cobra.Command{
		Use:     "boot",
		Short:   "Boot a minimal one-node guest N times; report wall and virtual time to agent-ready",
		Example: "  detvm bench boot -n 5",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			tools, err := cluster.Locate()
			if err != nil {
				return err
			}
			s := &scenario.Scenario{Name: "bench-boot", Seed: 1, Duration: time.Millisecond, Epoch: time.Millisecond,
				Nodes: []scenario.Node{{Name: "node-1", Binary: tools.Busybox, Args: []string{"true"}, Memory: 256}}}
			dir, err := os.MkdirTemp("", "detvm-bench-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			fmt.Printf("%-4s %14s %18s\n", "run", "boot_wall_ms", "ready_virtual_ms")
			var sumWall, sumVirt float64
			for i := 0; i < n; i++ {
				res, err := cluster.Run(context.Background(), s, tools, cluster.Options{Seed: 1, RunDir: filepath.Join(dir, strconv.Itoa(i)), Cold: true})
				if err != nil {
					return err
				}
				fmt.Printf("%-4d %14d %18.1f\n", i+1, res.BootWallMS, float64(res.ReadyNS)/1e6)
				sumWall += float64(res.BootWallMS)
				sumVirt += float64(res.ReadyNS) / 1e6
			}
			fmt.Printf("mean %14.0f %18.1f\n", sumWall/float64(n), sumVirt/float64(n))
			return nil
		},
	}
	boot.Flags().IntVarP(&n, "count", "n", 5, "number of boots")
	var kn int
	kernel := &cobra.Command{
		Use:     "kernel",
		Short:   "Time the guest kernel alone (to a busybox /init that reboots at once), with and without icount",
		Example: "  detvm bench kernel -n 3",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return benchKernel(kn)
		},
	}
	kernel.Flags().IntVarP(&kn, "count", "n", 3, "runs per variant")
	b.AddCommand(boot, kernel, benchSnapshotCmd())
	return b
}

func benchSnapshotCmd() *cobra.Command {
	var every time.Duration
	var restores int
	var asJSON bool
	c := &cobra.Command{
		Use:   "snapshot [SCENARIO]",
		Short: "Measure cluster snapshots: save, store, restore, dedup, warm start vs cold boot, against a plain migrate",
		Long: `snapshot runs SCENARIO (default examples/etcd/short.yaml, 3 nodes + sidecar) with a snapshot
every --every of virtual time, then restores one snapshot --restores times, boots the cluster
cold and warm, and saves one guest with a plain QMP migrate; it prints every number and the
ratios, all measured in this one run.`,
		Example: "  detvm bench snapshot --every 25ms",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "examples/etcd/short.yaml"
			if len(args) == 1 {
				path = args[0]
			}
			s, err := scenario.Load(path)
			if err != nil {
				return usageError{err}
			}
			tools, err := cluster.Locate()
			if err != nil {
				return err
			}
			dir, err := os.MkdirTemp("", "detvm-bench-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			b, err := cluster.BenchSnapshots(context.Background(), s, tools, dir, every, restores, os.Stderr)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(b)
			}
			printSnapshotBench(b)
			return nil
		},
	}
	c.Flags().DurationVar(&every, "every", 25*time.Millisecond, "virtual time between snapshots")
	c.Flags().IntVar(&restores, "restores", 3, "restores to time")
	c.Flags().BoolVar(&asJSON, "json", false, "print the raw measurements as JSON")
	return c
}

func printSnapshotBench(b *cluster.SnapshotBench) {
	var save, store, total, newB []int64
	for _, s := range b.Snapshots {
		save = append(save, s.SaveMS)
		store = append(store, s.StoreMS)
		total = append(total, s.SaveMS+s.StoreMS)
		newB = append(newB, s.NewBytes)
	}
	med := cluster.Median
	ratio := func(a, b int64) string {
		if b == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f×", float64(a)/float64(b))
	}
	mb := func(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
	fmt.Printf("Scenario %s: %d guests of %d MiB, %d snapshots.\n\n", b.Scenario, b.Guests, b.MemoryMiB, len(b.Snapshots))
	fmt.Println("| measurement | value | vs plain migrate of one VM (default cap) | vs plain migrate, uncapped |")
	fmt.Println("|---|---|---|---|")
	fmt.Printf("| plain `migrate` of one VM to a file, default 128 MiB/s cap | %d ms (%s) | 1× | |\n", b.PlainSaveMS, mb(b.PlainFileBytes))
	fmt.Printf("| plain `migrate` of one VM, cap lifted | %d ms | %s | 1× |\n", b.PlainSaveFastMS, ratio(b.PlainSaveFastMS, b.PlainSaveMS))
	fmt.Printf("| cluster snapshot: pause + save all guests (median) | %d ms | %s | %s |\n", med(save), ratio(med(save), b.PlainSaveMS), ratio(med(save), b.PlainSaveFastMS))
	fmt.Printf("| cluster snapshot: into the dedup store (median) | %d ms | | |\n", med(store))
	fmt.Printf("| cluster snapshot: total (median) | %d ms | %s | %s |\n", med(total), ratio(med(total), b.PlainSaveMS), ratio(med(total), b.PlainSaveFastMS))
	fmt.Printf("| load of one VM from its snapshot file | %d ms | | |\n", b.OneLoadMS)
	fmt.Printf("| cluster restore to running (median of %d) | %d ms | load: %s | |\n", len(b.Restores), med(b.Restores), ratio(med(b.Restores), b.OneLoadMS))
	fmt.Printf("| cold boot to all agents ready | %d ms | | |\n", b.ColdBoot)
	fmt.Printf("| warm start to all agents ready | %d ms | cold/warm: %s | |\n", b.WarmStart, ratio(b.ColdBoot, b.WarmStart))
	fmt.Printf("| first snapshot's bytes on disk | %s | | |\n", mb(b.FirstBytes))
	if len(newB) > 1 {
		fmt.Printf("| new bytes per later snapshot (median) | %s | | |\n", mb(med(newB[1:])))
	}
	fmt.Printf("| store after %d snapshots | %s | %s of the first | |\n", len(b.Snapshots), mb(b.StoreBytes), ratio(b.StoreBytes, b.FirstBytes))
}

// benchKernel separates the kernel's own boot cost from detvm's: the same
// machine without the shared page, QMP or barrier plugin, and no agent.
func benchKernel(n int) error {
	tools, err := cluster.Locate()
	if err != nil {
		return err
	}
	kern, err := tools.Kernel()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "detvm-bench-kernel-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	img := images.NewInitramfs()
	if err := img.AddHostFile("/bin/busybox", tools.Busybox, 0o755); err != nil {
		return err
	}
	img.AddSymlink("/bin/sh", "busybox")
	img.AddFile("/init", []byte("#!/bin/sh\n/bin/busybox reboot -f\n"), 0o755)
	data, err := img.Bytes()
	if err != nil {
		return err
	}
	initrd, _, err := images.Store(dir, "cpio", data)
	if err != nil {
		return err
	}
	cfg := vmm.Config{Name: "bench", QEMU: tools.QEMU, BIOS: tools.BIOS, Kernel: kern.Vmlinux, Initrd: initrd,
		MemoryMiB: 256, Console: filepath.Join(dir, "console.log")}
	variants := []struct {
		name string
		argv []string
		in   string
	}{
		{"QEMU start only (paused, quit)", append(cfg.BareCommandLine(true), "-S", "-monitor", "stdio"), "quit\n"},
		{"kernel to /init, icount", cfg.BareCommandLine(true), ""},
		{"kernel to /init, no icount", cfg.BareCommandLine(false), ""},
	}
	fmt.Printf("%-32s %12s\n", "variant", "wall_ms_mean")
	for _, v := range variants {
		var sum time.Duration
		for i := 0; i < n; i++ {
			c := exec.Command(v.argv[0], v.argv[1:]...)
			c.Stdin = strings.NewReader(v.in)
			start := time.Now()
			if out, err := c.CombinedOutput(); err != nil {
				return cluster.Infra("bench kernel: %s: %v: %s", v.name, err, out)
			}
			sum += time.Since(start)
		}
		fmt.Printf("%-32s %12d\n", v.name, (sum / time.Duration(n)).Milliseconds())
	}
	return nil
}
