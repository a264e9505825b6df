// Command register is the etcd example's workload: concurrent clients doing
// reads, writes and compare-and-sets on a few keys through etcd's gRPC
// gateway (HTTP and JSON, so no etcd client library), recording every
// operation into the run's history, which detvm checks for linearizability
// after the run (check: in the scenario).
//
//	register -endpoints http://node-1:2379,http://node-2:2379,http://node-3:2379 -duration 1s
//
// It waits until a member reports itself healthy (the cluster has a
// leader), says so with sdk.SetupComplete, runs the load and prints the
// summary. It exits 1 if no operation succeeded, 2 for bad flags.
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/detvm/detvm/workload/history"
	"github.com/detvm/detvm/workload/loadgen"
	"github.com/detvm/detvm/workload/sdk"
)

func main() {
	endpoints := flag.String("endpoints", "http://node-1:2379,http://node-2:2379,http://node-3:2379", "etcd client URLs, comma-separated")
	keys := flag.String("keys", "x,y,z", "the registers, comma-separated")
	prefix := flag.String("prefix", "register/", "etcd key prefix of the registers")
	clients := flag.Int("clients", 5, "concurrent clients")
	rate := flag.Float64("rate", 100, "target operations per second (0: unlimited)")
	duration := flag.Duration("duration", time.Second, "how long to issue operations")
	timeout := flag.Duration("timeout", time.Second, "timeout of one request")
	ready := flag.Duration("ready", 10*time.Second, "how long to wait for a healthy member")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "register: unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}
	c := &client{http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *clients}}, prefix: *prefix}
	eps := strings.Split(*endpoints, ",")
	ctx := context.Background()
	if err := c.waitHealthy(ctx, eps, *ready); err != nil {
		fmt.Fprintf(os.Stderr, "register: %v\n", err)
		os.Exit(1)
	}
	sdk.SetupComplete(map[string]any{"endpoints": eps})
	st, err := loadgen.Run(ctx, loadgen.Config{
		Client:      c,
		Generator:   &loadgen.Registers{Keys: strings.Split(*keys, ",")},
		Endpoints:   eps,
		Concurrency: *clients,
		Rate:        *rate,
		Duration:    *duration,
		Timeout:     *timeout,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "register: %v\n", err)
		os.Exit(1)
	}
	if st.OK == 0 {
		fmt.Fprintln(os.Stderr, "register: no operation succeeded")
		os.Exit(1)
	}
}

// client performs register operations on etcd through its JSON gateway.
type client struct {
	http   *http.Client
	prefix string
}

// waitHealthy polls the members' /health until one says true.
func (c *client) waitHealthy(ctx context.Context, eps []string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for i := 0; ; i++ {
		ep := eps[i%len(eps)]
		var h struct {
			Health string `json:"health"`
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		err := c.call(cctx, http.MethodGet, ep+"/health", nil, &h)
		cancel()
		if err == nil && h.Health == "true" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no healthy member after %v (last: %s: %v, health %q)", limit, ep, err, h.Health)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Do implements loadgen.Client.
func (c *client) Do(ctx context.Context, ep string, op loadgen.Op) (any, error) {
	key := b64(c.prefix + op.Key)
	switch op.F {
	case history.FRead:
		var resp struct {
			Kvs []struct {
				Value []byte `json:"value"` // base64 in JSON, decoded by encoding/json
			} `json:"kvs"`
		}
		if err := c.call(ctx, http.MethodPost, ep+"/v3/kv/range", map[string]any{"key": key}, &resp); err != nil {
			return nil, err
		}
		if len(resp.Kvs) == 0 {
			return nil, nil // never written: null
		}
		v, err := strconv.ParseInt(string(resp.Kvs[0].Value), 10, 64)
		if err != nil {
			return nil, loadgen.Definite(fmt.Errorf("register %s holds %q, not an int", op.Key, resp.Kvs[0].Value))
		}
		return v, nil
	case history.FWrite:
		v, _, err := loadgen.RegisterValue(op)
		if err != nil {
			return nil, loadgen.Definite(err)
		}
		return nil, c.call(ctx, http.MethodPost, ep+"/v3/kv/put", map[string]any{"key": key, "value": b64(strconv.FormatInt(v, 10))}, nil)
	case history.FCAS:
		to, from, err := loadgen.RegisterValue(op)
		if err != nil {
			return nil, loadgen.Definite(err)
		}
		txn := map[string]any{
			"compare": []any{map[string]any{"key": key, "target": "VALUE", "result": "EQUAL", "value": b64(strconv.FormatInt(from, 10))}},
			"success": []any{map[string]any{"request_put": map[string]any{"key": key, "value": b64(strconv.FormatInt(to, 10))}}},
		}
		var resp struct {
			Succeeded bool `json:"succeeded"` // left out when false
		}
		if err := c.call(ctx, http.MethodPost, ep+"/v3/kv/txn", txn, &resp); err != nil {
			return nil, err
		}
		if !resp.Succeeded {
			return nil, loadgen.Definite(fmt.Errorf("compare failed: %s is not %d", op.Key, from))
		}
		return nil, nil
	}
	return nil, loadgen.Definite(fmt.Errorf("unknown operation %q", op.F))
}

// call sends a JSON request and decodes the JSON reply into out (if not
// nil). A refused connection is loadgen.Unavailable; an error reply with a
// 4xx status (a malformed request) is definite; everything else, a timeout
// or an etcd error such as "request timed out" or "leader changed", may
// have been applied and so is left unknown.
func (c *client) call(ctx context.Context, method, url string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return loadgen.Definite(err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return loadgen.Definite(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return loadgen.NetError(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(b, &e)
		err := fmt.Errorf("%s: %s: %s", url, resp.Status, strings.TrimSpace(e.Error))
		if resp.StatusCode >= 400 && resp.StatusCode < 500 {
			return loadgen.Definite(err)
		}
		return err
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return errors.Join(fmt.Errorf("%s: reply %.100q", url, b), err)
	}
	return nil
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
