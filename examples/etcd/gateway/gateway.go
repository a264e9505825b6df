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
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/detvm/detvm/workload/loadgen"
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
