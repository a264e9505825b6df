package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/detvm/detvm/auditor"
	"github.com/detvm/detvm/cluster"
	"github.com/detvm/detvm/scenario"
)

// checkCmd checks a recorded history on the host: a heavier check than
// the run's budget allowed, another model, or a history from elsewhere
// (Jepsen's JSON lines read the same).
func checkCmd() *cobra.Command {
	var model string
	var timeout time.Duration
	var asJSON bool
	c := &cobra.Command{
		Use:   "check RUN_DIR|HISTORY",
		Short: "Check a run's history (history.jsonl) for linearizability or serializability",
		Long: `Check a recorded history against a model: linearizable-register (reads, writes and
compare-and-sets on registers; porcupine's view goes to linearizability.html beside it) or
list-append (transactions of appends and reads; Elle-style anomalies). Given a run directory,
the model defaults to the one its scenario's check: used, and a failure is located in the
guests' events. Exit 0 if the history passed or could not be decided in the time given
(unknown), 1 if it failed, 2 for bad arguments.`,
		Example: `  detvm check /tmp/run1
  detvm check /tmp/run1 --model list-append --timeout 2m
  detvm check history.jsonl --model linearizable-register --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			st, err := os.Stat(path)
			if err != nil {
				return usagef("%s: %v; give a run directory (detvm run --out DIR) or a history file", path, errors.Unwrap(err))
			}
			runDir := filepath.Dir(path)
			if st.IsDir() {
				runDir, path = path, filepath.Join(path, cluster.HistoryFile)
				if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
					return usagef("%s: no %s: the run's workload recorded no history (write one with workload/history into sdk.HistoryWriter())", runDir, cluster.HistoryFile)
				}
			}
			prev, epochNS := recordedRun(runDir)
			if model == "" {
				model = prev
			}
			models := []string{scenario.HistoryLinearizableRegister, scenario.HistoryListAppend}
			switch {
			case model == "":
				return usagef("which model? the run recorded no history check; add --model %s", strings.Join(models, " or --model "))
			case model != models[0] && model != models[1]:
				return usagef("--model %q: use %s", model, strings.Join(models, " or "))
			}
			if timeout <= 0 {
				return usagef("--timeout %v: give the check a positive time budget like 1m", timeout)
			}
			hc := cluster.CheckHistoryFile(runDir, path, scenario.Check{History: model, Timeout: timeout}, epochNS)
			v := hc.Verdict
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(v); err != nil {
					return err
				}
			} else {
				fmt.Printf("%-8s %s (%s)\n", v.Status, v.Property, v.Message)
				printFirstFailure(v.FirstFailure, "         ")
			}
			if v.Status == string(auditor.Failed) {
				return exitError{exitFailed}
			}
			return nil
		},
	}
	c.Flags().StringVar(&model, "model", "", "linearizable-register or list-append (default: the run's check: model)")
	c.Flags().DurationVar(&timeout, "timeout", time.Minute, "wall-time budget; a check that runs out is unknown")
	c.Flags().BoolVar(&asJSON, "json", false, "print the verdict as JSON")
	return c
}

// recordedRun reads what a run directory's result.json says of the check:
// the model its history was checked against, if any, and the epoch
// length. Zero values if there is no result.json (a bare history file).
func recordedRun(runDir string) (model string, epochNS uint64) {
	b, err := os.ReadFile(filepath.Join(runDir, "result.json"))
	if err != nil {
		return "", 0
	}
	var r cluster.Result
	if json.Unmarshal(b, &r) != nil {
		return "", 0
	}
	for _, v := range r.Verdicts {
		if m, ok := strings.CutPrefix(v.Property, "history:"); ok && v.Kind == "history" {
			model = m
		}
	}
	if r.Epochs > 0 {
		epochNS = r.VirtualNS / r.Epochs
	}
	return model, epochNS
}
