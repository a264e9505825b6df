package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/detvm/detvm/cluster"
	"github.com/detvm/detvm/faults"
	"github.com/detvm/detvm/replay"
	"github.com/detvm/detvm/scenario"
)

func isCobraUsage(err error) bool {
	s := err.Error()
	return strings.Contains(s, "arg(s)") || strings.HasPrefix(s, "unknown command") || strings.HasPrefix(s, "unknown flag")
}

func runCmd() *cobra.Command {
	var seedFlag, out, from, store, branchSeed, idle, faultsFlag string
	var asJSON, noBarrier, portable, cold bool
	var repeat int
	var snapEvery time.Duration
	c := &cobra.Command{
		Use:   "run SCENARIO",
		Short: "Boot the scenario's nodes, run it to its end, print verdicts and the trace hash",
		Example: `  detvm run examples/hello/scenario.yaml --seed 7
  detvm run examples/etcd-single/scenario.yaml --json --out /tmp/run1
  detvm run examples/redis/scenario.yaml --repeat 3
  detvm run examples/etcd/short.yaml --out /tmp/a --snapshot-every 5s
  detvm run examples/etcd/short.yaml --store /tmp/a --from-snapshot 3f2a --branch-seed 9`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := scenario.Load(args[0])
			if err != nil {
				return usageError{err}
			}
			if seedFlag != "" {
				seed, err := strconv.ParseUint(seedFlag, 10, 64)
				if err != nil {
					return usagef("--seed %q is not a number; use a non-negative integer like --seed 7", seedFlag)
				}
				s.Seed = seed
			}
			switch idle {
			case "":
			case scenario.IdleSpin, scenario.IdleWarp:
				s.Idle = idle
			default:
				return usagef("--idle %q: use spin (guests never halt; any QEMU) or warp (idle guests skip ahead; detvm's patched QEMU)", idle)
			}
			if out == "" {
				// The wall clock names the directory only; it never reaches a guest.
				out = filepath.Join("runs", fmt.Sprintf("%s-seed%d-%s", s.Name, s.Seed, time.Now().Format("20060102-150405.000")))
			}
			if ents, err := os.ReadDir(out); err == nil && len(ents) > 0 {
				return usagef("--out %s is not empty; choose a new directory", out)
			}
			if repeat < 1 {
				return usagef("--repeat %d: must be at least 1", repeat)
			}
			opt := cluster.Options{Seed: s.Seed, RunDir: out, Log: os.Stderr, NoBarrier: noBarrier, SnapshotEvery: snapEvery, From: from, Cold: cold}
			if err := snapshotOptions(&opt, seedFlag, store, branchSeed, noBarrier); err != nil {
				return err
			}
			if faultsFlag != "" {
				if opt.Faults, err = loadFaults(faultsFlag); err != nil {
					return err
				}
			}
			tools, err := cluster.Locate()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if noBarrier {
				fmt.Fprintln(os.Stderr, "detvm: --no-barrier: guests run free; this run is NOT deterministic (debug only)")
			}
			if repeat > 1 {
				return runRepeat(ctx, s, tools, opt, repeat, asJSON)
			}
			res, err := cluster.Run(ctx, s, tools, opt)
			if err != nil {
				return err
			}
			if _, err := replay.Write(res, args[0], opt, tools, portable); err != nil {
				fmt.Fprintf(os.Stderr, "detvm: could not write the replay bundle: %v\n", err)
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(res); err != nil {
					return err
				}
			} else {
				printResult(res)
			}
			if res.Failed() {
				return exitError{exitFailed}
			}
			return nil
		},
	}
	c.Flags().StringVar(&seedFlag, "seed", "", "run seed (default: the scenario's seed)")
	c.Flags().StringVar(&out, "out", "", "run directory (default runs/NAME-seedN-TIME)")
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as one JSON object on stdout")
	c.Flags().IntVar(&repeat, "repeat", 1, "run N times (in DIR/1..N) and report whether all traces are identical (exit 3 if not)")
	c.Flags().BoolVar(&noBarrier, "no-barrier", false, "debug: let guests run free of the barriers (shows the determinism check failing)")
	c.Flags().DurationVar(&snapEvery, "snapshot-every", 0, "take a cluster snapshot every DURATION of virtual time (e.g. 5s)")
	c.Flags().StringVar(&store, "store", "", "snapshot store: a run directory or a store directory (default OUT/snapshots)")
	c.Flags().StringVar(&from, "from-snapshot", "", "continue from snapshot ID in --store instead of booting")
	c.Flags().StringVar(&idle, "idle", "", "how idle guests pass time: warp (guests halt, QEMU skips to the next timer; needs detvm's patched QEMU) or spin (any QEMU, slower); default: the scenario's idle:, else warp when the patched QEMU is built, else spin with a warning")
	c.Flags().BoolVar(&cold, "cold", false, "boot the guests even if a warm start (the cluster saved right after its first boot) is cached")
	c.Flags().BoolVar(&portable, "portable", false, "the replay bundle also carries the kernel and node images (replays on a machine without the scenario's files)")
	c.Flags().StringVar(&faultsFlag, "faults", "", "fault schedule: random (every kind, moderate rates, from the seed), none, or a YAML file (docs/faults.md); overrides the scenario's faults:")
	c.Flags().StringVar(&branchSeed, "branch-seed", "", "with --from-snapshot: continue with this seed for everything random after the snapshot")
	return c
}

// loadFaults reads --faults: a built-in policy's name or a file.
func loadFaults(arg string) (*faults.Spec, error) {
	if spec, ok := faults.Builtin(arg); ok {
		return spec, nil
	}
	if _, err := os.Stat(arg); err != nil {
		return nil, usagef("--faults %s: no such file and not a built-in policy; use random, none, or a YAML file of faults (docs/faults.md)", arg)
	}
	spec, err := faults.Load(arg)
	if err != nil {
		return nil, usageError{err}
	}
	return spec, nil
}

// snapshotOptions checks and fills the snapshot flags of run.
func snapshotOptions(opt *cluster.Options, seedFlag, store, branchSeed string, noBarrier bool) error {
	if opt.SnapshotEvery < 0 {
		return usagef("--snapshot-every %v: must be positive (virtual time, e.g. 5s)", opt.SnapshotEvery)
	}
	if store != "" {
		opt.Store = storeDir(store)
	}
	if noBarrier && (opt.SnapshotEvery > 0 || opt.From != "") {
		return usagef("--no-barrier cannot be combined with snapshots: free-running guests have no consistent cut")
	}
	if opt.From == "" {
		if branchSeed != "" {
			return usagef("--branch-seed needs --from-snapshot ID: a branch continues a snapshot with a new seed")
		}
		return nil
	}
	if store == "" {
		return usagef("--from-snapshot %s needs --store DIR: the run directory (or store) that holds the snapshot; `detvm snapshot ls --dir DIR` lists them", opt.From)
	}
	if seedFlag != "" {
		return usagef("--seed does not apply with --from-snapshot: the snapshot carries its run's seed; use --branch-seed N to continue with another")
	}
	if branchSeed != "" {
		seed, err := strconv.ParseUint(branchSeed, 10, 64)
		if err != nil || seed == 0 {
			return usagef("--branch-seed %q: use a positive integer like --branch-seed 9", branchSeed)
		}
		opt.Branch, opt.BranchSeed = true, seed
	}
	return nil
}

// storeDir accepts a run directory (its snapshots/ is the store) or a store.
func storeDir(dir string) string {
	if _, err := os.Stat(filepath.Join(dir, "manifests")); err == nil {
		return dir
	}
	return filepath.Join(dir, "snapshots")
}

func printResult(r *cluster.Result) {
	verdict := "PASSED"
	if r.Failed() {
		verdict = "FAILED"
	}
	fmt.Printf("run       %s\n", r.RunDir)
	for _, v := range r.Verdicts {
		msg := ""
		if v.Message != "" {
			msg = " (" + v.Message + ")"
		}
		prop := v.Property
		if v.Kind != "" && v.Kind != "exit" && v.Kind != "history" {
			prop = v.Kind + " " + strconv.Quote(v.Property) // an SDK assertion
		}
		fmt.Printf("  %-8s %s%s\n", v.Status, prop, msg)
		printFirstFailure(v.FirstFailure, "           ")
	}
	for _, w := range r.PropertyWarnings {
		fmt.Printf("warning   %s\n", w)
	}
	fmt.Printf("verdict   %s\n", verdict)
	fmt.Printf("seed      %d\n", r.Seed)
	fmt.Printf("trace     %s\n", r.TraceHash)
	fmt.Printf("replay    detvm replay %s\n", filepath.Join(r.RunDir, replay.FileName))
	start := fmt.Sprintf("boot %.1f s", float64(r.BootWallMS)/1e3)
	switch {
	case r.FromSnapshot != "":
		start = fmt.Sprintf("restore %.1f s", float64(r.RestoreMS)/1e3)
	case r.WarmStart:
		start = fmt.Sprintf("warm start %.1f s", float64(r.BootWallMS)/1e3)
	}
	fmt.Printf("time      %.3f s virtual in %d epochs, %.1f s wall (%s); ended: %s\n",
		float64(r.VirtualNS)/1e9, r.Epochs, float64(r.WallMS)/1e3, start, r.Ended)
	if r.FromSnapshot != "" {
		fmt.Printf("from      snapshot %s (epoch %d), restored in %d ms\n", r.FromSnapshot, r.FromEpoch, r.RestoreMS)
	}
	if len(r.Segments) > 1 {
		var segs []string
		for _, s := range r.Segments {
			segs = append(segs, fmt.Sprintf("seed %d from epoch %d", s.Seed, s.FromEpoch))
		}
		fmt.Printf("segments  %s\n", strings.Join(segs, ", "))
	}
	if len(r.Faults) > 0 {
		kinds := map[string]int{}
		var order []string
		for _, f := range r.Faults {
			if kinds[f.Kind] == 0 {
				order = append(order, f.Kind)
			}
			kinds[f.Kind]++
		}
		var parts []string
		for _, k := range order {
			parts = append(parts, fmt.Sprintf("%d %s", kinds[k], k))
		}
		fmt.Printf("faults    %s (log: %s)\n", strings.Join(parts, ", "), filepath.Join(r.RunDir, "faults.log"))
	}
	for _, s := range r.Snapshots {
		fmt.Printf("snapshot  %s at epoch %d (%.3f s virtual): %d MB, %d MB new\n", s.ID, s.Epoch, float64(s.VirtualNS)/1e9, s.Bytes>>20, s.NewBytes>>20)
	}
}

// printFirstFailure prints where a failed verdict first failed, if known.
func printFirstFailure(f *cluster.FirstFailure, indent string) {
	if f == nil {
		return
	}
	who := f.Node
	if f.Proc != "" {
		who += "/" + f.Proc
	}
	fmt.Printf("%sfirst failed at epoch %d (%.3f s virtual) on %s: %s\n", indent, f.Epoch, float64(f.VirtualNS)/1e9, who, f.Message)
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print detvm's version",
		Example: "  detvm version",
		Args:    cobra.NoArgs,
		Run: func(cmd *cobra.Command, args []string) {
			fmt.Println("detvm " + version())
		},
	}
}

// runRepeat runs s n times and compares every trace with the first.
func runRepeat(ctx context.Context, s *scenario.Scenario, tools cluster.Tools, opt cluster.Options, n int, asJSON bool) error {
	type runOut struct {
		Run       int    `json:"run"`
		TraceHash string `json:"trace_hash"`
		RunDir    string `json:"run_dir"`
		WallMS    int64  `json:"wall_ms"`
		Same      bool   `json:"identical_to_run_1"`
		Epoch     uint64 `json:"diverged_epoch,omitempty"`
		Guest     string `json:"diverged_guest,omitempty"`
		Detail    string `json:"diverged_detail,omitempty"`
	}
	var runs []runOut
	base := opt.RunDir
	same := 0
	for i := 1; i <= n; i++ {
		opt.RunDir = filepath.Join(base, strconv.Itoa(i))
		fmt.Fprintf(os.Stderr, "detvm: run %d/%d\n", i, n)
		res, err := cluster.Run(ctx, s, tools, opt)
		if err != nil {
			return err
		}
		r := runOut{Run: i, TraceHash: res.TraceHash, RunDir: res.RunDir, WallMS: res.WallMS, Same: true}
		if i > 1 {
			d, detail, ok, err := cluster.CompareRuns(runs[0].RunDir, res.RunDir)
			if err != nil {
				return err
			}
			r.Same = ok
			if !ok {
				r.Epoch, r.Guest, r.Detail = d.Epoch, d.Guest, d.What
				if detail != "" {
					r.Detail += "; " + detail
				}
			}
		}
		if r.Same {
			same++
		}
		runs = append(runs, r)
	}
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"runs": runs, "identical": same, "of": n}); err != nil {
			return err
		}
	} else {
		for _, r := range runs {
			if r.Same {
				fmt.Printf("run %-3d %s  identical   %s\n", r.Run, r.TraceHash[:16], r.RunDir)
			} else {
				fmt.Printf("run %-3d %s  DIVERGED at epoch %d: %s\n", r.Run, r.TraceHash[:16], r.Epoch, r.Detail)
			}
		}
		fmt.Printf("%d/%d runs identical to run 1\n", same, n)
	}
	if same != n {
		return exitError{exitDiverged}
	}
	return nil
}
