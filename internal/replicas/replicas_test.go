package replicas_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/allinx/hopprobe/internal/peers"
	"github.com/allinx/hopprobe/internal/replicas"
	"github.com/allinx/hopprobe/scheduler"
)

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

func TestPlaceIsTheSameOrderOnEveryReplica(t *testing.T) {
	for _, c := range []struct {
		addrs       []netip.Addr
		self        string
		index, size int
		ok          bool
	}{
		{addrs("10.0.0.9", "10.0.0.10"), "10.0.0.9", 0, 2, true},
		{addrs("10.0.0.10", "10.0.0.9"), "10.0.0.10", 1, 2, true},
		// IPv4 in IPv6 form and duplicates are one replica.
		{addrs("::ffff:10.0.0.2", "10.0.0.1", "10.0.0.2"), "10.0.0.2", 1, 2, true},
		{addrs("10.0.0.1", "10.0.0.2"), "10.0.0.3", 0, 2, false},
		{addrs("fd00::2", "fd00::1", "fd00::3"), "fd00::3", 2, 3, true},
	} {
		i, n, ok := replicas.Place(c.addrs, netip.MustParseAddr(c.self))
		if ok != c.ok || (ok && (i != c.index || n != c.size)) {
			t.Errorf("Place(%v, %s) = %d of %d (%v), want %d of %d (%v)", c.addrs, c.self, i, n, ok, c.index, c.size, c.ok)
		}
	}
	if a, b := replicas.FromName("hopprobe-7d9f-abcde"), replicas.FromName("hopprobe-7d9f-fghij"); a == b || a < 0 || a >= 1 {
		t.Errorf("phases from two pod names: %v and %v", a, b)
	}
}

// A replica takes its phase from the headless Service's DNS answer, as
// a real resolver serves it, and moves when a replica comes or goes;
// an answer without it (not ready yet) keeps the phase it had. The
// addresses are data in DNS answers, never contacted.
func TestWatchFollowsTheReplicaSet(t *testing.T) {
	var mu sync.Mutex
	ready := []string{"10.1.0.7", "10.1.0.3"}
	srv, err := peers.DNS(dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		if q.Question[0].Qtype == dns.TypeA {
			mu.Lock()
			for _, a := range ready {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: net.ParseIP(a)})
			}
			mu.Unlock()
		}
		w.WriteMsg(m)
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, srv.Addr)
	}}
	var logs syncBuffer
	phase := &scheduler.Phase{}
	phase.Set(0.9)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		replicas.Watch(ctx, r, "hopprobe-replicas.hopprobe.svc.cluster.local.", netip.MustParseAddr("10.1.0.7"), 20*time.Millisecond, phase, slog.New(slog.NewTextHandler(&logs, nil)))
		close(done)
	}()
	defer func() { cancel(); <-done }()
	waitPhase := func(want float64) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); phase.Get() != want; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("phase %v, want %v; log:\n%s", phase.Get(), want, logs.String())
			}
		}
	}
	waitPhase(0.5) // second of two
	mu.Lock()
	ready = []string{"10.1.0.7", "10.1.0.3", "10.1.0.200"}
	mu.Unlock()
	waitPhase(1.0 / 3) // second of three: .200 sorts after .7
	mu.Lock()
	ready = []string{"10.1.0.3"}
	mu.Unlock()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "does not list this pod's address"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("an answer without this pod was not reported; log:\n%s", logs.String())
		}
	}
	if got := phase.Get(); got != 1.0/3 {
		t.Errorf("an answer without this pod moved the phase to %v", got)
	}
	if n := strings.Count(logs.String(), "does not list"); n != 1 {
		t.Errorf("the same problem was logged %d times, want once:\n%s", n, logs.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
