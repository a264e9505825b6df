// Command kv is a small replicated register store with a deliberate bug, the
// system under test of detvm's buggy-kv example.
//
// Every node keeps a map of registers. One node is the leader: it serves
// reads and writes, and copies every write to the other nodes before it
// answers. The others redirect clients to it. The leader sends a heartbeat,
// with its whole map, to every node every 100 ms; a follower that hears
// none for a while takes over as leader with a higher term.
//
// Without faults this is linearizable: node-1 leads from the start, never
// stops hearing itself, and every operation goes through it, one at a
// time. The bug is what a real system asks a majority for and this one
// does not:
//
//   - A follower that stops hearing the leader makes itself leader without
//     a vote (a real system needs a majority of votes).
//   - A leader acknowledges a write once it has tried the followers, reached
//     or not (a real system waits for a majority).
//
// So when a partition cuts the leader off, it goes on acknowledging writes
// that reach nobody, while the majority elects a leader of its own. When
// the partition heals, the old leader hears the new one's higher term and
// takes its map: the writes it acknowledged are lost, and reads show
// older values. A linearizability check of the clients' history sees it.
//
// Usage: kv -peers node-1,node-2,node-3. The node's own name comes from
// $DETVM_NODE; the first peer is the first leader. Every node serves
// clients and peers on port 8080.
//
// Clients POST /op {"f":"read|write|cas","key":"x","value":5,"from":3}:
// 200 {"value":5} (a read of a key never written gives null), 409 when a
// cas finds another value, 503 {"leader":"node-2"} from a node that is not
// the leader.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/detvm/detvm/workload/sdk"
)

const (
	heartbeatEvery = 100 * time.Millisecond
	// A follower that hears no heartbeat for electionAfter (plus a
	// stagger by its place in -peers, so that one node wins) takes over.
	electionAfter = 500 * time.Millisecond
	stagger       = 250 * time.Millisecond
	// peerTimeout bounds one message to a peer.
	peerTimeout = 150 * time.Millisecond
	port        = ":8080"
)

type node struct {
	self  string
	peers []string // the other nodes
	rank  int      // place of self in -peers
	http  *http.Client

	mu     sync.Mutex
	term   int64
	leader string
	heard  time.Time // last heartbeat from the leader
	data   map[string]int64
}

func main() {
	peers := flag.String("peers", "node-1,node-2,node-3", "all nodes, comma-separated; the first leads first")
	flag.Parse()
	all := strings.Split(*peers, ",")
	self := os.Getenv("DETVM_NODE")
	rank := slices.Index(all, self)
	if rank < 0 {
		log.Fatalf("kv: DETVM_NODE=%q is not one of -peers %s", self, *peers)
	}
	n := &node{
		self: self, peers: slices.Delete(slices.Clone(all), rank, rank+1), rank: rank,
		http: &http.Client{Timeout: peerTimeout},
		term: 1, leader: all[0], heard: time.Now(), data: map[string]int64{},
	}
	go n.heartbeats()
	go n.elections()
	http.HandleFunc("POST /op", n.serveOp)
	http.HandleFunc("POST /peer/heartbeat", n.serveHeartbeat)
	http.HandleFunc("POST /peer/set", n.serveSet)
	log.Printf("kv: %s listening on %s, leader %s", self, port, n.leader)
	log.Fatal(http.ListenAndServe(port, nil))
}

// op is a client's request.
type op struct {
	F     string `json:"f"`
	Key   string `json:"key"`
	Value int64  `json:"value"`
	From  int64  `json:"from"`
}

func (n *node) serveOp(w http.ResponseWriter, r *http.Request) {
	var o op
	if err := json.NewDecoder(r.Body).Decode(&o); err != nil {
		reply(w, http.StatusBadRequest, map[string]any{"error": err.Error()})
		return
	}
	// One operation at a time, replication included: on a single leader,
	// that makes the store linearizable.
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.leader != n.self {
		reply(w, http.StatusServiceUnavailable, map[string]any{"error": "not the leader", "leader": n.leader})
		return
	}
	switch o.F {
	case "read":
		// Served from the leader's own map. BUG: a leader that has been
		// cut off does not know that it no longer leads.
		if v, ok := n.data[o.Key]; ok {
			reply(w, http.StatusOK, map[string]any{"value": v})
		} else {
			reply(w, http.StatusOK, map[string]any{"value": nil})
		}
	case "write":
		n.set(o.Key, o.Value)
		reply(w, http.StatusOK, map[string]any{})
	case "cas":
		if v, ok := n.data[o.Key]; !ok || v != o.From {
			reply(w, http.StatusConflict, map[string]any{"error": fmt.Sprintf("%s is not %d", o.Key, o.From)})
			return
		}
		n.set(o.Key, o.Value)
		reply(w, http.StatusOK, map[string]any{})
	default:
		reply(w, http.StatusBadRequest, map[string]any{"error": "unknown f " + o.F})
	}
}

// set applies a write and copies it to every follower, waiting for each to
// answer or time out. Called with n.mu held.
func (n *node) set(key string, v int64) {
	n.data[key] = v
	msg := map[string]any{"term": n.term, "key": key, "value": v}
	var wg sync.WaitGroup
	for _, p := range n.peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// BUG: a follower that cannot be reached is skipped, and the
			// write is acknowledged anyway, even if no other node has it.
			_ = n.send(p, "/peer/set", msg, nil)
		}()
	}
	wg.Wait()
}

func (n *node) serveSet(w http.ResponseWriter, r *http.Request) {
	var m struct {
		Term  int64  `json:"term"`
		Key   string `json:"key"`
		Value int64  `json:"value"`
	}
	if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
		reply(w, http.StatusBadRequest, map[string]any{"error": err.Error()})
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if m.Term >= n.term {
		n.data[m.Key] = m.Value
	}
	reply(w, http.StatusOK, map[string]any{"term": n.term})
}

// heartbeat is the leader's periodic message: its term and its whole map,
// which followers adopt.
type heartbeat struct {
	Term   int64            `json:"term"`
	Leader string           `json:"leader"`
	Data   map[string]int64 `json:"data"`
}

func (n *node) heartbeats() {
	for range time.Tick(heartbeatEvery) {
		n.mu.Lock()
		if n.leader != n.self {
			n.mu.Unlock()
			continue
		}
		hb := heartbeat{Term: n.term, Leader: n.self, Data: maps.Clone(n.data)}
		n.mu.Unlock()
		for _, p := range n.peers {
			go func() {
				var resp struct {
					Term int64 `json:"term"`
				}
				if n.send(p, "/peer/heartbeat", hb, &resp) != nil {
					return
				}
				n.mu.Lock()
				defer n.mu.Unlock()
				if resp.Term > n.term {
					// Someone leads in a later term: step down and wait
					// for its heartbeat.
					log.Printf("kv: %s steps down: %s is in term %d", n.self, p, resp.Term)
					n.term, n.leader, n.heard = resp.Term, "", time.Now()
				}
			}()
		}
	}
}

func (n *node) serveHeartbeat(w http.ResponseWriter, r *http.Request) {
	var hb heartbeat
	if err := json.NewDecoder(r.Body).Decode(&hb); err != nil {
		reply(w, http.StatusBadRequest, map[string]any{"error": err.Error()})
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if hb.Term >= n.term {
		if n.leader != hb.Leader {
			log.Printf("kv: %s follows %s in term %d", n.self, hb.Leader, hb.Term)
		}
		// The leader's map replaces ours: this is where a deposed
		// leader loses the writes only it had.
		n.term, n.leader, n.heard, n.data = hb.Term, hb.Leader, time.Now(), hb.Data
		if n.data == nil {
			n.data = map[string]int64{}
		}
	}
	reply(w, http.StatusOK, map[string]any{"term": n.term})
}

func (n *node) elections() {
	timeout := electionAfter + time.Duration(n.rank)*stagger
	for range time.Tick(50 * time.Millisecond) {
		n.mu.Lock()
		if n.leader == n.self || time.Since(n.heard) < timeout {
			n.mu.Unlock()
			continue
		}
		// BUG: no votes. A real election needs a majority, which a node
		// cut off from the others cannot get.
		n.term++
		n.leader = n.self
		term := n.term
		n.mu.Unlock()
		log.Printf("kv: %s leads in term %d", n.self, term)
		sdk.Reachable("a follower took over as leader", map[string]any{"node": n.self, "term": term})
	}
}

// send posts msg to a peer and decodes its reply into resp (if not nil).
func (n *node) send(peer, path string, msg, resp any) error {
	b, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), peerTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+peer+port+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	r, err := n.http.Do(req)
	if err != nil {
		return err
	}
	defer r.Body.Close()
	if resp == nil {
		return nil
	}
	return json.NewDecoder(r.Body).Decode(resp)
}

func reply(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
