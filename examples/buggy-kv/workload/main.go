// Command workload is the buggy-kv example's test: concurrent clients doing
// reads, writes and compare-and-sets on three registers of the kv nodes,
// every operation recorded into the run's history. detvm checks the
// history for linearizability after the run (check: in scenario.yaml).
//
// The workload decides nothing itself; it records faithfully what each
// client asked and heard, including "don't know" (a timeout after the
// request was sent is an info op: it may or may not have happened).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/detvm/detvm/workload/loadgen"
)

func main() {
	nodes := flag.String("nodes", "node-1,node-2,node-3", "the kv nodes, comma-separated")
	duration := flag.Duration("duration", 3*time.Second, "how long to issue operations")
	flag.Parse()
	var endpoints []string
	for _, n := range strings.Split(*nodes, ",") {
		endpoints = append(endpoints, "http://"+n+":8080")
	}
	st, err := loadgen.Run(context.Background(), loadgen.Config{
		Client: client{http: &http.Client{}},
		// Read-heavy: the lost writes show only if a key is read after
		// the heal before it is written again (a failed cas is not
		// evidence), so reads make the bug likelier to show on any seed.
		Generator:   &loadgen.Registers{Keys: []string{"x", "y", "z"}, Read: 4, Write: 1, CompareSwap: 1},
		Endpoints:   endpoints,
		Concurrency: 4,
		Rate:        40, // operations per second, over all clients
		Duration:    *duration,
		Timeout:     time.Second,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "workload:", err)
		os.Exit(1)
	}
	if st.OK == 0 {
		fmt.Fprintln(os.Stderr, "workload: no operation succeeded")
		os.Exit(1)
	}
}

type client struct{ http *http.Client }

// Do sends one operation to a kv node and says what is known of its
// outcome: the value, a definite failure (409: the cas found another
// value), "ask the leader" (503), or, for any other error, nothing.
func (c client) Do(ctx context.Context, endpoint string, op loadgen.Op) (any, error) {
	req := map[string]any{"f": op.F, "key": op.Key}
	if op.F != "read" {
		v, from, err := loadgen.RegisterValue(op)
		if err != nil {
			return nil, loadgen.Definite(err)
		}
		req["value"], req["from"] = v, from
	}
	body, _ := json.Marshal(req)
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint+"/op", bytes.NewReader(body))
	if err != nil {
		return nil, loadgen.Definite(err)
	}
	resp, err := c.http.Do(hreq)
	if err != nil {
		return nil, loadgen.NetError(err) // refused: try elsewhere; else unknown
	}
	defer resp.Body.Close()
	var r struct {
		Value  *int64 `json:"value"`
		Error  string `json:"error"`
		Leader string `json:"leader"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		if r.Value == nil {
			return nil, nil // a read of a register never written
		}
		return *r.Value, nil
	case http.StatusConflict:
		return nil, loadgen.Definite(errors.New(r.Error))
	case http.StatusServiceUnavailable:
		leader := ""
		if r.Leader != "" {
			leader = "http://" + r.Leader + ":8080"
		}
		return nil, loadgen.NotLeader(leader, fmt.Errorf("%s: %s", endpoint, r.Error))
	}
	return nil, fmt.Errorf("%s: %s: %s", endpoint, resp.Status, r.Error)
}
