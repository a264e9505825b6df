package cluster_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/detvm/detvm/cluster"
	"github.com/detvm/detvm/faults"
	"github.com/detvm/detvm/internal/testenv"
	"github.com/detvm/detvm/scenario"
	"github.com/detvm/detvm/workload/history"
)

// historyVerdict returns the run's verdict on its history, or fails t.
func historyVerdict(t *testing.T, res *cluster.Result) cluster.Verdict {
	t.Helper()
	for _, v := range res.Verdicts {
		if v.Kind == "history" {
			return v
		}
	}
	t.Fatalf("no history verdict in %+v", res.Verdicts)
	return cluster.Verdict{}
}

// historyCounts summarises a run's history.jsonl: completions by type.
func historyCounts(t *testing.T, runDir string) string {
	t.Helper()
	f, err := os.Open(filepath.Join(runDir, cluster.HistoryFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ops, err := history.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	n := map[history.Type]int{}
	for _, op := range ops {
		n[op.Type]++
	}
	done := n[history.OK] + n[history.Fail] + n[history.Info]
	return fmt.Sprintf("%d ops: %d ok, %d fail, %d info (%.1f%% ok)", done, n[history.OK], n[history.Fail], n[history.Info], 100*float64(n[history.OK])/float64(max(done, 1)))
}

// TestBuggyKV is the acceptance test of the history check, on the
// buggy-kv example (a store that elects leaders without a majority): with
// the scenario's partition, seed 1, the linearizability verdict fails and
// names the first offending op; without faults the same workload passes.
func TestBuggyKV(t *testing.T) {
	tools := testenv.Tools(t)
	s, err := scenario.Load(testenv.Example(t, "buggy-kv"))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("partition", func(t *testing.T) {
		res := run(t, tools, s, 1)
		v := historyVerdict(t, res)
		t.Logf("%s: %s: %s; %s", v.Property, v.Status, v.Message, historyCounts(t, res.RunDir))
		if v.Status != "failed" || !res.Failed() {
			t.Fatalf("history verdict %s, want failed (a partitioned leader loses acknowledged writes)", v.Status)
		}
		if f := v.FirstFailure; f == nil || f.Node != "sidecar" || f.Proc != "workload" || f.Epoch == 0 {
			t.Errorf("first failure %+v: want the sidecar's workload and an epoch", f)
		}
		if !strings.Contains(v.Message, "offending: #") {
			t.Errorf("message lists no offending op: %s", v.Message)
		}
		if _, err := os.Stat(filepath.Join(res.RunDir, cluster.LinearizabilityHTML)); err != nil {
			t.Error(err)
		}
		for _, other := range res.Verdicts {
			if other.Status == "failed" && other.Kind != "history" {
				t.Errorf("only the history check should fail: %+v", other)
			}
		}
	})
	t.Run("no-faults", func(t *testing.T) {
		none, _ := faults.Builtin("none")
		res, err := cluster.Run(context.Background(), s, tools, cluster.Options{Seed: 1, RunDir: filepath.Join(t.TempDir(), "run"), Faults: none})
		if err != nil {
			t.Fatal(err)
		}
		v := historyVerdict(t, res)
		t.Logf("%s: %s: %s; %s; %d ms wall", v.Property, v.Status, v.Message, historyCounts(t, res.RunDir), res.WallMS)
		if v.Status != "passed" || res.Failed() {
			t.Fatalf("without faults: history %s, verdicts %+v", v.Status, res.Verdicts)
		}
	})
}
