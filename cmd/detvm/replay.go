package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/detvm/detvm/cluster"
	"github.com/detvm/detvm/replay"
)

func replayCmd() *cobra.Command {
	var out, store string
	var asJSON bool
	c := &cobra.Command{
		Use:   "replay BUNDLE",
		Short: "Re-execute a run from its replay bundle and check it epoch by epoch",
		Long: `replay re-executes the run a bundle (replay.detvm, written by every detvm run) describes
and checks its trace epoch by epoch against the recorded one. It prints MATCH (exit 0, or 1
if the replayed run fails a property, as the original did) or the first diverging epoch,
guest and event (exit 3). A machine whose QEMU, kernel, images, agent or plugin differ from
the recorded ones is refused before anything runs, naming each difference (exit 4).`,
		Example: `  detvm replay runs/etcd-seed1-20261125-101500.000/replay.detvm
  detvm replay /tmp/bug/replay.detvm --json --out /tmp/replay1`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := os.Stat(args[0]); err != nil {
				return usagef("%v: pass the replay.detvm file of a run", err)
			}
			if _, err := replay.Peek(args[0]); err != nil {
				return usageError{err}
			}
			if out == "" {
				// The wall clock names the directory only.
				out = filepath.Join("runs", "replay-"+time.Now().Format("20060102-150405.000"))
			}
			if ents, err := os.ReadDir(out); err == nil && len(ents) > 0 {
				return usagef("--out %s is not empty; choose a new directory", out)
			}
			tools, err := cluster.Locate()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			o, err := replay.Replay(ctx, args[0], tools, replay.Options{RunDir: out, Log: os.Stderr, Store: store})
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(o); err != nil {
					return err
				}
			} else {
				printOutcome(o)
			}
			switch {
			case !o.Match:
				return exitError{exitDiverged}
			case o.Failed:
				return exitError{exitFailed}
			}
			return nil
		},
	}
	c.Flags().StringVar(&out, "out", "", "directory for the replayed run (default runs/replay-TIME)")
	c.Flags().StringVar(&store, "store", "", "snapshot store to use instead of the one recorded (for a run that continued a snapshot)")
	c.Flags().BoolVar(&asJSON, "json", false, "print the outcome as one JSON object on stdout")
	return c
}

func printOutcome(o *replay.Outcome) {
	if o.Match {
		verdict := "passed"
		if o.Failed {
			verdict = "FAILED (as recorded)"
			if !o.Originally {
				verdict = "FAILED"
			}
		}
		fmt.Printf("MATCH     trace %s; properties %s\n", o.TraceHash, verdict)
		for _, v := range o.Verdicts {
			if v.Status != "passed" {
				fmt.Printf("  %-8s %s %s\n", v.Status, v.Property, v.Message)
			}
		}
		fmt.Printf("run       %s\n", o.RunDir)
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "DIVERGED  at epoch %d", o.Epoch)
	if o.Guest != "" {
		fmt.Fprintf(&b, ", guest %s", o.Guest)
	}
	fmt.Fprintf(&b, ": %s\n", o.What)
	if o.Event != "" {
		fmt.Fprintf(&b, "          %s\n", o.Event)
	}
	fmt.Fprintf(&b, "run       %s\n", o.RunDir)
	fmt.Print(b.String())
}
