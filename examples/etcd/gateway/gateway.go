// Package gateway is a small client of etcd's gRPC gateway (HTTP and
// JSON), shared by the etcd example's workloads: it needs no etcd client
// library, and its errors say what is known of a request's outcome in
// loadgen's terms.
package gateway

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
	"strings"
	"time"

	"github.com/detvm/detvm/workload/loadgen"
	"github.com/detvm/detvm/workload/sdk"
)

// Client talks to etcd members through their gateways.
type Client struct {
	HTTP *http.Client
}

// New returns a Client that keeps up to conns idle connections per member.
func New(conns int) *Client {
	return &Client{HTTP: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns}}}
}

// WaitHealthy polls the members' /health until one says true, which means
// the cluster has a leader.
func (c *Client) WaitHealthy(ctx context.Context, eps []string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for i := 0; ; i++ {
		ep := eps[i%len(eps)]
		var h struct {
			Health string `json:"health"`
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		err := c.Call(cctx, http.MethodGet, ep+"/health", nil, &h)
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

// Call sends a JSON request and decodes the JSON reply into out (if not
// nil). A refused connection is loadgen.Unavailable; an error reply with a
// 4xx status (a malformed request) is definite; everything else, a timeout
// or an etcd error such as "request timed out" or "leader changed", may
// have been applied and so is left unknown.
func (c *Client) Call(ctx context.Context, method, url string, in, out any) error {
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
	resp, err := c.HTTP.Do(req)
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

// B64 encodes a key or value as the gateway wants bytes: base64.
func B64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// Load is what the example's workloads have in common: the flags of a
// load against the cluster, then the load itself.
type Load struct {
	Name      string // the program's name, for messages
	endpoints *string
	clients   *int
	rate      *float64
	duration  *time.Duration
	timeout   *time.Duration
	ready     *time.Duration
}

// NewLoad registers the common flags on flag.CommandLine.
func NewLoad(name string) *Load {
	return &Load{
		Name:      name,
		endpoints: flag.String("endpoints", "http://node-1:2379,http://node-2:2379,http://node-3:2379", "etcd client URLs, comma-separated"),
		clients:   flag.Int("clients", 5, "concurrent clients"),
		rate:      flag.Float64("rate", 100, "target operations per second (0: unlimited)"),
		duration:  flag.Duration("duration", time.Second, "how long to issue operations"),
		timeout:   flag.Duration("timeout", time.Second, "timeout of one request"),
		ready:     flag.Duration("ready", 10*time.Second, "how long to wait for a healthy member"),
	}
}

// Run parses the flags, waits until a member is healthy, says so with
// sdk.SetupComplete, and runs the load with the generator and client that
// setup makes (after the flags are parsed) from a gateway Client. It exits
// 2 for bad flags and 1 if the cluster never became healthy or no
// operation succeeded.
func (l *Load) Run(setup func(*Client) (loadgen.Generator, loadgen.Client)) {
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "%s: unexpected argument %q\n", l.Name, flag.Arg(0))
		os.Exit(2)
	}
	c := New(*l.clients)
	eps := strings.Split(*l.endpoints, ",")
	ctx := context.Background()
	if err := c.WaitHealthy(ctx, eps, *l.ready); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", l.Name, err)
		os.Exit(1)
	}
	sdk.SetupComplete(map[string]any{"endpoints": eps})
	gen, client := setup(c)
	st, err := loadgen.Run(ctx, loadgen.Config{
		Client:      client,
		Generator:   gen,
		Endpoints:   eps,
		Concurrency: *l.clients,
		Rate:        *l.rate,
		Duration:    *l.duration,
		Timeout:     *l.timeout,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", l.Name, err)
		os.Exit(1)
	}
	if st.OK == 0 {
		fmt.Fprintf(os.Stderr, "%s: no operation succeeded\n", l.Name)
		os.Exit(1)
	}
}
