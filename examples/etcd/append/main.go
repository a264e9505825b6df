// Command append is the etcd example's list-append workload: concurrent
// clients run transactions of appends and reads over a few keys, each key
// holding a list, through etcd's gRPC gateway; every transaction is
// recorded into the run's history, which detvm checks for serializability
// after the run (check: {history: list-append}).
//
//	append -endpoints http://node-1:2379,http://node-2:2379,http://node-3:2379 -duration 1s
//
// A transaction is two etcd requests, as in Jepsen's etcd append test:
// one txn reads every key the transaction touches (one revision, so a
// consistent snapshot); the micro-ops are applied to that snapshot; then,
// if anything was appended, a second txn writes the new lists on
// condition that no key changed since (mod_revision compares on every key
// read, read-only ones included). A failed condition is a definite fail;
// an unanswered write is unknown (info).
//
// It exits 1 if no transaction succeeded, 2 for bad flags.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/detvm/detvm/examples/etcd/gateway"
	"github.com/detvm/detvm/workload/loadgen"
)

func main() {
	load := gateway.NewLoad("append")
	prefix := flag.String("prefix", "append/", "etcd key prefix of the lists")
	keys := flag.Int("keys", 8, "active keys")
	maxAppends := flag.Int("max-appends", 32, "appends a key gets before it is retired for a fresh one")
	load.Run(func(c *gateway.Client) (loadgen.Generator, loadgen.Client) {
		return &loadgen.ListAppend{Keys: *keys, MaxAppends: *maxAppends}, &client{Client: c, prefix: *prefix}
	})
}

// client performs list-append transactions on etcd through its gateway.
// A list is stored as its elements in decimal, comma-separated.
type client struct {
	*gateway.Client
	prefix string
}

// rangeResp is the part of a txn's reply this client reads. int64s come
// as JSON strings from the gateway, and zero values are left out.
type rangeResp struct {
	Succeeded bool `json:"succeeded"`
	Responses []struct {
		ResponseRange struct {
			Kvs []struct {
				Value       []byte `json:"value"` // base64, decoded by encoding/json
				ModRevision string `json:"mod_revision"`
			} `json:"kvs"`
		} `json:"response_range"`
	} `json:"responses"`
}

// Do implements loadgen.Client.
func (c *client) Do(ctx context.Context, ep string, op loadgen.Op) (any, error) {
	txn, err := loadgen.TxnValue(op)
	if err != nil {
		return nil, loadgen.Definite(err)
	}
	keys := loadgen.Keys(txn)
	var reads []any
	for _, k := range keys {
		reads = append(reads, map[string]any{"request_range": map[string]any{"key": gateway.B64(c.prefix + k)}})
	}
	var snap rangeResp
	if err := c.Call(ctx, http.MethodPost, ep+"/v3/kv/txn", map[string]any{"success": reads}, &snap); err != nil {
		// Only read: whatever happened, nothing changed, so it is safe
		// to try again elsewhere.
		return nil, loadgen.Unavailable(err)
	}
	if len(snap.Responses) != len(keys) {
		return nil, loadgen.Definite(fmt.Errorf("read txn: %d responses for %d keys", len(snap.Responses), len(keys)))
	}
	lists := map[string][]int64{}
	revs := make([]string, len(keys))
	for i, k := range keys {
		kvs := snap.Responses[i].ResponseRange.Kvs
		revs[i] = "0" // absent: compares equal to mod_revision 0
		if len(kvs) == 0 {
			continue
		}
		if kvs[0].ModRevision != "" {
			revs[i] = kvs[0].ModRevision
		}
		l, err := parseList(string(kvs[0].Value))
		if err != nil {
			return nil, loadgen.Definite(fmt.Errorf("key %s: %w", k, err))
		}
		lists[k] = l
	}
	done, written := loadgen.Apply(txn, lists)
	if len(written) == 0 {
		return done, nil
	}
	var cmps, puts []any
	for i, k := range keys {
		cmps = append(cmps, map[string]any{"key": gateway.B64(c.prefix + k), "target": "MOD", "result": "EQUAL", "mod_revision": revs[i]})
	}
	for _, k := range written {
		puts = append(puts, map[string]any{"request_put": map[string]any{"key": gateway.B64(c.prefix + k), "value": gateway.B64(formatList(lists[k]))}})
	}
	var resp rangeResp
	if err := c.Call(ctx, http.MethodPost, ep+"/v3/kv/txn", map[string]any{"compare": cmps, "success": puts}, &resp); err != nil {
		return nil, err
	}
	if !resp.Succeeded {
		return nil, loadgen.Definite(fmt.Errorf("conflict: a key of %v changed since it was read", keys))
	}
	return done, nil
}

func parseList(s string) ([]int64, error) {
	if s == "" {
		return nil, nil
	}
	var out []int64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("holds %q, not a list of ints", s)
		}
		out = append(out, v)
	}
	return out, nil
}

func formatList(l []int64) string {
	parts := make([]string, len(l))
	for i, v := range l {
		parts[i] = strconv.FormatInt(v, 10)
	}
	return strings.Join(parts, ",")
}
