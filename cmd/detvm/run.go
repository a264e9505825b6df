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
	"github.com/detvm/detvm/scenario"
)

func isCobraUsage(err error) bool {
	s := err.Error()
	return strings.Contains(s, "arg(s)") || strings.HasPrefix(s, "unknown command") || strings.HasPrefix(s, "unknown flag")
}

func runCmd() *cobra.Command {
	var seedFlag, out string
	var asJSON, noBarrier bool
	var repeat int
	c := &cobra.Command{
		Use:   "run SCENARIO",
		Short: "Boot the scenario's nodes, run it to its end, print verdicts and the trace hash",
		Example: `  detvm run examples/hello/scenario.yaml --seed 7
  detvm run examples/etcd-single/scenario.yaml --json --out /tmp/run1
  detvm run examples/redis/scenario.yaml --repeat 3`,
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
			if out == "" {
				// The wall clock names the directory only; it never reaches a guest.
				out = filepath.Join("runs", fmt.Sprintf("%s-seed%d-%s", s.Name, s.Seed, time.Now().Format("20060102-150405.000")))
			}
			if ents, err := os.ReadDir(out); err == nil && len(ents) > 0 {
				return usagef("--out %s is not empty; choose a new directory", out)
			}
			tools, err := cluster.Locate()
			if err != nil {
				return err
			}
			if repeat < 1 {
				return usagef("--repeat %d: must be at least 1", repeat)
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			opt := cluster.Options{Seed: s.Seed, RunDir: out, Log: os.Stderr, NoBarrier: noBarrier}
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
	return c
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
		fmt.Printf("  %-8s %s%s\n", v.Status, v.Property, msg)
	}
	fmt.Printf("verdict   %s\n", verdict)
	fmt.Printf("seed      %d\n", r.Seed)
	fmt.Printf("trace     %s\n", r.TraceHash)
	fmt.Printf("time      %.3f s virtual in %d epochs, %.1f s wall (boot %.1f s); ended: %s\n",
		float64(r.VirtualNS)/1e9, r.Epochs, float64(r.WallMS)/1e3, float64(r.BootWallMS)/1e3, r.Ended)
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
