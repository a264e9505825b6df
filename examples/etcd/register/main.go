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
	"context"
	"flag"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/detvm/detvm/examples/etcd/gateway"
	"github.com/detvm/detvm/workload/history"
	"github.com/detvm/detvm/workload/loadgen"
)

func main() {
	load := gateway.NewLoad("register")
	keys := flag.String("keys", "x,y,z", "the registers, comma-separated")
	prefix := flag.String("prefix", "register/", "etcd key prefix of the registers")
	load.Run(func(c *gateway.Client) (loadgen.Generator, loadgen.Client) {
		return &loadgen.Registers{Keys: strings.Split(*keys, ",")}, &client{Client: c, prefix: *prefix}
	})
}

// client performs register operations on etcd through its JSON gateway.
type client struct {
	*gateway.Client
	prefix string
}

// Do implements loadgen.Client.
func (c *client) Do(ctx context.Context, ep string, op loadgen.Op) (any, error) {
	key := gateway.B64(c.prefix + op.Key)
	switch op.F {
	case history.FRead:
		var resp struct {
			Kvs []struct {
				Value []byte `json:"value"` // base64 in JSON, decoded by encoding/json
			} `json:"kvs"`
		}
		if err := c.Call(ctx, http.MethodPost, ep+"/v3/kv/range", map[string]any{"key": key}, &resp); err != nil {
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
		return nil, c.Call(ctx, http.MethodPost, ep+"/v3/kv/put", map[string]any{"key": key, "value": gateway.B64(strconv.FormatInt(v, 10))}, nil)
	case history.FCAS:
		to, from, err := loadgen.RegisterValue(op)
		if err != nil {
			return nil, loadgen.Definite(err)
		}
		txn := map[string]any{
			"compare": []any{map[string]any{"key": key, "target": "VALUE", "result": "EQUAL", "value": gateway.B64(strconv.FormatInt(from, 10))}},
			"success": []any{map[string]any{"request_put": map[string]any{"key": key, "value": gateway.B64(strconv.FormatInt(to, 10))}}},
		}
		var resp struct {
			Succeeded bool `json:"succeeded"` // left out when false
		}
		if err := c.Call(ctx, http.MethodPost, ep+"/v3/kv/txn", txn, &resp); err != nil {
			return nil, err
		}
		if !resp.Succeeded {
			return nil, loadgen.Definite(fmt.Errorf("compare failed: %s is not %d", op.Key, from))
		}
		return nil, nil
	}
	return nil, loadgen.Definite(fmt.Errorf("unknown operation %q", op.F))
}
