package probes_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/allinx/hopprobe/hop"
)

// tlsServer is a real Go HTTPS server; with h2 it offers HTTP/2 by ALPN
// as a CDN edge does, without it only HTTP/1.1.
func tlsServer(t *testing.T, h2 bool, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = h2
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func edgeTarget(t *testing.T, srv *httptest.Server, protocols ...string) hop.Target {
	return hop.Target{Address: addr(srv), Host: "example.com", Scheme: "https", Path: "/", TLS: caFile(t, srv),
		MaxBodyBytes: 1 << 20, Protocols: protocols}
}

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Server", "CloudFront")
	w.Write([]byte(r.Proto))
})

// An HTTPS hop offers h2 and http/1.1 as a browser does, speaks what the
// server chose, and says which.
func TestAnHTTPSHopSpeaksWhatTheServerChose(t *testing.T) {
	for _, c := range []struct {
		h2   bool
		want string
	}{{true, "h2"}, {false, "http/1.1"}} {
		srv := tlsServer(t, c.h2, okHandler)
		r := run(t, hop.KindHTTP, edgeTarget(t, srv), 5*time.Second)
		wantOK(t, r)
		if got := r.Details["protocol"]; got != c.want {
			t.Errorf("server with h2=%v: protocol %q, want %q", c.h2, got, c.want)
		}
		if got := r.Details["header.server"]; got != "CloudFront" {
			t.Errorf("evidence header lost over %s: %q", c.want, got)
		}
		phases := map[string]bool{}
		for _, p := range r.Phases {
			phases[p.Name] = true
		}
		for _, p := range []string{"connect", "tls", "first_byte", "transfer"} {
			if !phases[p] {
				t.Errorf("over %s no %s phase: %v", c.want, p, r.Phases)
			}
		}
	}
}

// A hop that must speak h2 fails, naming it, where the edge only speaks
// HTTP/1.1; each version asked for is probed and reported.
func TestRequiredProtocolsAreEachProbed(t *testing.T) {
	h1 := tlsServer(t, false, okHandler)
	r := run(t, hop.KindHTTP, edgeTarget(t, h1, "http/1.1", "h2"), 5*time.Second)
	wantFail(t, r, "h2: ")
	wantFail(t, r, "does not speak h2: ALPN chose http/1.1")
	if r.Details["protocol.http/1.1"] != "ok" || r.Details["protocol.h2"] != "failed" {
		t.Errorf("details %v, want http/1.1 ok and h2 failed", r.Details)
	}
	h2 := tlsServer(t, true, okHandler)
	r = run(t, hop.KindHTTP, edgeTarget(t, h2, "http/1.1", "h2"), 5*time.Second)
	wantOK(t, r)
	if r.Details["protocol.http/1.1"] != "ok" || r.Details["protocol.h2"] != "ok" {
		t.Errorf("details %v, want both ok", r.Details)
	}
}

// Over HTTP/2 the same bounds hold: the body limit, the header limit
// (a header block far past it is refused), the expected status.
func TestHTTP2KeepsTheBounds(t *testing.T) {
	big := tlsServer(t, true, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte(strings.Repeat("x", 2<<20)))
	}))
	wantFail(t, run(t, hop.KindHTTP, edgeTarget(t, big, "h2"), 5*time.Second), "exceeds the size limit")
	headers := tlsServer(t, true, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		for i := range 200 {
			w.Header().Set("X-Flood-"+strings.Repeat("h", 10)+string(rune('a'+i%26))+string(rune('a'+i/26)), strings.Repeat("v", 1000))
		}
	}))
	r := run(t, hop.KindHTTP, edgeTarget(t, headers, "h2"), 5*time.Second)
	if r.Success {
		t.Fatal("a 200 KB header block over h2 passed")
	}
	t.Logf("header flood over h2: %s", r.Error)
	bad := tlsServer(t, true, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Via", "1.1 alb")
		w.WriteHeader(http.StatusBadGateway)
	}))
	wantFail(t, run(t, hop.KindHTTP, edgeTarget(t, bad), 5*time.Second), "HTTP 502")
}

// A hop that must announce HTTP/3 in Alt-Svc (alt_svc: h3) passes only
// where the answer does, and the header is evidence either way.
func TestAltSvcIsRecordedAndCanBeRequired(t *testing.T) {
	announcing := tlsServer(t, true, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Alt-Svc", `h3=":443"; ma=86400, h3-29=":443"`)
	}))
	tg := edgeTarget(t, announcing)
	tg.AltSvc = "h3"
	r := run(t, hop.KindHTTP, tg, 5*time.Second)
	wantOK(t, r)
	if !strings.Contains(r.Details["header.alt-svc"], `h3=":443"`) {
		t.Errorf("Alt-Svc not kept as evidence: %v", r.Details)
	}
	silent := tlsServer(t, true, okHandler)
	tg = edgeTarget(t, silent)
	tg.AltSvc = "h3"
	wantFail(t, run(t, hop.KindHTTP, tg, 5*time.Second), "does not announce h3 in Alt-Svc")
	other := tlsServer(t, true, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Alt-Svc", `h3-29=":443"`)
	}))
	tg = edgeTarget(t, other)
	tg.AltSvc = "h3"
	wantFail(t, run(t, hop.KindHTTP, tg, 5*time.Second), `it sent "h3-29=\":443\""`)
}
