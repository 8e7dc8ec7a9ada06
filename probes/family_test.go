package probes_test

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/internal/testkit"
)

// Each family of a dual-stack edge is probed on its own: IPv6 broken
// while IPv4 answers shows as the IPv6 hop failing, and a name without
// AAAA records fails the IPv6 hop saying so.
func TestEachAddressFamilyIsProbedOnItsOwn(t *testing.T) {
	port, v6 := testkit.DualStackEdge(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) }), "dual stack")
	var aaaa atomic.Bool
	aaaa.Store(true)
	resolver := testkit.DualStackResolver(t, &aaaa)
	tg := func(family string) hop.Target {
		return hop.Target{Address: "edge.example.test:" + port, Host: "edge.example.test", Scheme: "http", Path: "/",
			Family: family, Resolver: resolver}
	}
	r4 := run(t, hop.KindHTTP, tg("ipv4"), 5*time.Second)
	r6 := run(t, hop.KindHTTP, tg("ipv6"), 5*time.Second)
	wantOK(t, r4)
	wantOK(t, r6)
	if r4.Details["remote"] != "127.0.0.1:"+port || r6.Details["remote"] != "[::1]:"+port {
		t.Errorf("remotes %q and %q, want one per family", r4.Details["remote"], r6.Details["remote"])
	}
	v6.Close() // IPv6 transit broken
	wantOK(t, run(t, hop.KindHTTP, tg("ipv4"), 5*time.Second))
	wantFail(t, run(t, hop.KindHTTP, tg("ipv6"), 5*time.Second), "[::1]:"+port)
	aaaa.Store(false) // the AAAA alias is missing
	wantFail(t, run(t, hop.KindTCP, tg("ipv6"), 5*time.Second), "edge.example.test has no IPv6 address (AAAA record)")
	// An IP address is of one family.
	wantFail(t, run(t, hop.KindTCP, hop.Target{Address: "127.0.0.1:" + port, Family: "ipv6"}, 5*time.Second), "127.0.0.1 is not an IPv6 address")
}
