package probes_test

import (
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/miekg/dns"
	"go.uber.org/goleak"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/internal/peers"
	"github.com/allinx/hopprobe/probes"
)

// Toxiproxy's own pipe goroutines (the fault injector in faults_test.go)
// can outlive a stopped proxy by design of its link teardown; they are
// the test bench's, not the prober's, and are the only ones tolerated.
func TestMain(m *testing.M) {
	probes.RegisterKinds()
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/Shopify/toxiproxy/v2/toxics.(*ToxicStub).Run"),
		goleak.IgnoreAnyFunction("github.com/Shopify/toxiproxy/v2.(*ToxicLink).read"),
		goleak.IgnoreAnyFunction("github.com/Shopify/toxiproxy/v2.(*ToxicLink).write"),
	)
}

func run(t *testing.T, kind hop.Kind, tg hop.Target, timeout time.Duration) hop.Result {
	t.Helper()
	return probes.Run(context.Background(), kind, &tg, timeout)
}

func wantOK(t *testing.T, r hop.Result) {
	t.Helper()
	if !r.Success {
		t.Fatalf("probe failed: %s", r.Error)
	}
}

func wantFail(t *testing.T, r hop.Result, substr string) {
	t.Helper()
	if r.Success {
		t.Fatalf("probe succeeded, want failure containing %q", substr)
	}
	if !strings.Contains(r.Error, substr) {
		t.Fatalf("error %q does not contain %q", r.Error, substr)
	}
}

func phase(r hop.Result, name string) bool {
	for _, p := range r.Phases {
		if p.Name == name {
			return true
		}
	}
	return false
}

// caFile writes the test server's certificate as a CA file.
func caFile(t *testing.T, srv *httptest.Server) *config.TLS {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(path, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return &config.TLS{CAFile: path}
}

func addr(srv *httptest.Server) string {
	return strings.TrimPrefix(strings.TrimPrefix(srv.URL, "https://"), "http://")
}

func TestHTTPThroughAVirtualHostWithPhases(t *testing.T) {
	var gotHost string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHost = r.Host
		w.Write([]byte(`{"status":"ok","data":{"role":"primary"}}`))
	}))
	defer srv.Close()
	// httptest certificates are valid for example.com.
	r := run(t, hop.KindHTTP, hop.Target{Address: addr(srv), Host: "example.com", Scheme: "https", Path: "/health",
		TLS: caFile(t, srv), Expect: config.Expect{Status: []int{200}, JSON: map[string]string{"status": "ok", "data.role": "primary"}}}, 2*time.Second)
	wantOK(t, r)
	if gotHost != "example.com" {
		t.Errorf("Host header = %q", gotHost)
	}
	for _, p := range []string{"connect", "tls", "first_byte", "transfer"} {
		if !phase(r, p) {
			t.Errorf("missing phase %s in %+v", p, r.Phases)
		}
	}
	if r.CertExpiry.IsZero() {
		t.Error("certificate expiry not recorded")
	}
}

func TestHTTPExpectationsFailWithReasons(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/502":
			w.Header().Set("Server", "alb-public")
			w.WriteHeader(http.StatusBadGateway)
		case "/big":
			w.Write([]byte(strings.Repeat("x", 4096)))
		default:
			w.Write([]byte(`{"status":"degraded"}`))
		}
	}))
	defer srv.Close()
	base := hop.Target{Address: addr(srv), Host: "api.example.test", Scheme: "http", MaxBodyBytes: 1024}
	tg := base
	tg.Path = "/502"
	wantFail(t, run(t, hop.KindHTTP, tg, time.Second), "HTTP 502 from "+addr(srv)+", want 2xx or 3xx (server alb-public)")
	tg = base
	tg.Expect.JSON = map[string]string{"status": "ok"}
	wantFail(t, run(t, hop.KindHTTP, tg, time.Second), `JSON field status is "degraded", want "ok"`)
	tg = base
	tg.Expect.BodyContains = "healthy"
	wantFail(t, run(t, hop.KindHTTP, tg, time.Second), `does not contain "healthy"`)
	tg = base
	tg.Path = "/big"
	wantFail(t, run(t, hop.KindHTTP, tg, time.Second), "exceeds the size limit")
}

// An HTTPS hop with no virtual host asks for its address, and the
// certificate is checked against the address's IP.
func TestHTTPSWithoutAHostChecksTheAddress(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	// httptest certificates name 127.0.0.1 as well as example.com.
	tg := hop.Target{Address: addr(srv), Scheme: "https", Path: "/health", TLS: caFile(t, srv)}
	wantOK(t, run(t, hop.KindHTTP, tg, 2*time.Second))
}

// Informational answers (103 Early Hints from a CDN) come before the
// real one, which is what the hop is judged on.
func TestHTTPJudgesTheResponseAfterInformationalOnes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</app.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	tg := hop.Target{Address: addr(srv), Host: "api.example.test", Scheme: "http", Path: "/health"}
	r := run(t, hop.KindHTTP, tg, 2*time.Second)
	wantFail(t, r, "HTTP 503 from "+addr(srv))
	if r.Details["status"] != "503" {
		t.Errorf("status detail = %q, want the final response's 503", r.Details["status"])
	}
}

func TestHTTPHangingPeerFailsAtTheTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	start := time.Now()
	r := run(t, hop.KindHTTP, hop.Target{Address: addr(srv), Host: "a.test", Scheme: "http"}, 300*time.Millisecond)
	wantFail(t, r, "no answer within 300ms")
	if el := time.Since(start); el > time.Second {
		t.Fatalf("probe took %s, its timeout is 300ms", el)
	}
}

func TestTLSHandshakeRecordsExpiryAndChecksTheName(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	ca := caFile(t, srv)
	r := run(t, hop.KindTLS, hop.Target{Address: addr(srv), Host: "example.com", TLS: ca}, time.Second)
	wantOK(t, r)
	if !phase(r, "tls") || r.CertExpiry.IsZero() {
		t.Fatalf("phases %+v expiry %v", r.Phases, r.CertExpiry)
	}
	wantFail(t, run(t, hop.KindTLS, hop.Target{Address: addr(srv), Host: "api.allinpro.com", TLS: ca}, time.Second), "TLS handshake")
	// Without the CA the self-signed certificate must not be trusted.
	wantFail(t, run(t, hop.KindTLS, hop.Target{Address: addr(srv), Host: "example.com"}, time.Second), "certificate")
}

func TestTCPConnectsAndReportsRefusal(t *testing.T) {
	ln := acceptAndClose(t)
	open := ln.Addr().String()
	wantOK(t, run(t, hop.KindTCP, hop.Target{Address: open}, time.Second))
	ln.Close()
	wantFail(t, run(t, hop.KindTCP, hop.Target{Address: open}, time.Second), "connection refused")
}

func TestExpectUnreachableInvertsTheVerdict(t *testing.T) {
	ln := acceptAndClose(t)
	open := ln.Addr().String()
	wantFail(t, run(t, hop.KindTCP, hop.Target{Address: open, ExpectUnreachable: true}, time.Second), "SECURITY")
	ln.Close()
	wantOK(t, run(t, hop.KindTCP, hop.Target{Address: open, ExpectUnreachable: true}, time.Second))
}

var upgrader = websocket.Upgrader{}

func wsServer(t *testing.T, reply string, hang bool) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		if _, _, err := c.ReadMessage(); err != nil {
			return
		}
		c.WriteMessage(websocket.TextMessage, []byte(`{"op":"tick"}`))
		if hang {
			c.ReadMessage() // until the client goes away
			return
		}
		c.WriteMessage(websocket.TextMessage, []byte(reply))
		c.ReadMessage()
	}))
}

func TestWebSocketSendsAndWaitsForTheReply(t *testing.T) {
	srv := wsServer(t, `{"op":"pong"}`, false)
	defer srv.Close()
	r := run(t, hop.KindWebSocket, hop.Target{Address: addr(srv), Host: "api.example.test", Scheme: "http", Path: "/futures/ws",
		Expect: config.Expect{Send: `{"op":"ping"}`, Reply: "pong"}}, time.Second)
	wantOK(t, r)
	if !phase(r, "handshake") || !phase(r, "reply") {
		t.Fatalf("phases %+v", r.Phases)
	}
}

func TestWebSocketWithoutTheReplyFailsAtTheTimeout(t *testing.T) {
	srv := wsServer(t, "", true)
	defer srv.Close()
	start := time.Now()
	r := run(t, hop.KindWebSocket, hop.Target{Address: addr(srv), Host: "a.test", Scheme: "http",
		Expect: config.Expect{Send: "ping", Reply: "pong"}}, 300*time.Millisecond)
	wantFail(t, r, `no reply containing "pong"`)
	if el := time.Since(start); el > time.Second {
		t.Fatalf("took %s", el)
	}
}

func TestWebSocketRefusedUpgradeNamesTheStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", "apisix")
		http.Error(w, "no route", http.StatusNotFound)
	}))
	defer srv.Close()
	wantFail(t, run(t, hop.KindWebSocket, hop.Target{Address: addr(srv), Host: "a.test", Scheme: "http"}, time.Second), "HTTP 404 (server apisix)")
}

// dnsServer answers from a fixed zone on loopback.
func dnsServer(t *testing.T, h dns.HandlerFunc) string {
	t.Helper()
	srv, err := peers.DNS(h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv.Addr
}

func TestDNSAnswersAndFailures(t *testing.T) {
	server := dnsServer(t, func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		name := q.Question[0].Name
		hdr := func(typ uint16) dns.RR_Header {
			return dns.RR_Header{Name: name, Rrtype: typ, Class: dns.ClassINET, Ttl: 5}
		}
		switch name {
		case "api.example.test.":
			if q.Question[0].Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr(dns.TypeA), A: net.IPv4(127, 0, 0, 9)})
			}
		case "broken.example.test.":
			m.Rcode = dns.RcodeServerFailure
		case "loop.example.test.":
			m.Answer = append(m.Answer,
				&dns.CNAME{Hdr: hdr(dns.TypeCNAME), Target: "loop2.example.test."},
				&dns.CNAME{Hdr: dns.RR_Header{Name: "loop2.example.test.", Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 5}, Target: "loop.example.test."})
		default:
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})
	r := run(t, hop.KindDNS, hop.Target{Host: "api.example.test", Resolver: server}, time.Second)
	wantOK(t, r)
	if r.Details["addresses"] != "127.0.0.9" {
		t.Errorf("addresses = %q", r.Details["addresses"])
	}
	wantFail(t, run(t, hop.KindDNS, hop.Target{Host: "nope.example.test", Resolver: server}, time.Second), "answered NXDOMAIN for nope.example.test")
	wantFail(t, run(t, hop.KindDNS, hop.Target{Host: "broken.example.test", Resolver: server}, time.Second), "answered SERVFAIL")
	wantFail(t, run(t, hop.KindDNS, hop.Target{Host: "loop.example.test", Resolver: server}, time.Second), "CNAME loop")
}

func TestDNSSilentResolverFailsAtTheTimeout(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	start := time.Now()
	wantFail(t, run(t, hop.KindDNS, hop.Target{Host: "api.example.test", Resolver: pc.LocalAddr().String()}, 300*time.Millisecond), "did not answer")
	if el := time.Since(start); el > time.Second {
		t.Fatalf("took %s", el)
	}
}

// Redact handles a password holding an @ in a URL, quoted key=value
// forms, and leaves short strings alone rather than mangling messages
// (secrets that short are refused before any probe runs).
func TestRedactEdgeCases(t *testing.T) {
	for in, want := range map[string]string{
		"dial redis://:p@ss@host:6379 failed":          "dial redis://:[REDACTED]@host:6379 failed",
		`connect password="two words" host=db`:         `connect password=[REDACTED] host=db`,
		"connect password='it''s' host=db":             "connect password=[REDACTED]'s' host=db",
		"no secrets at all in this production message": "no secrets at all in this production message",
	} {
		if got := probes.Redact(in, nil); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
	t.Setenv("HOPPROBE_TEST_SHORT", "prod")
	tg := &hop.Target{Store: &config.Store{Name: "db", Password: &config.SecretRef{Env: "HOPPROBE_TEST_SHORT"}}}
	if got := probes.Redact("production database", tg); got != "production database" {
		t.Errorf("a short secret mangled the message: %q", got)
	}
	r := probes.Run(context.Background(), hop.KindRedis, &hop.Target{Address: "127.0.0.1:1", Store: tg.Store}, time.Second)
	if r.Success || !strings.Contains(r.Error, "refuses passwords shorter than 8") || strings.Contains(r.Error, "prod") {
		t.Errorf("a short secret was used or shown: %q", r.Error)
	}
}

func TestRedactRemovesSecretsFromMessages(t *testing.T) {
	t.Setenv("HOPPROBE_TEST_PW", "Sup3r-Secret")
	tg := &hop.Target{Store: &config.Store{Name: "db", Password: &config.SecretRef{Env: "HOPPROBE_TEST_PW"}}}
	msg := "failed to connect to postgres://hopprobe:Sup3r-Secret@db:5432/x (password=Sup3r-Secret) auth Sup3r-Secret"
	got := probes.Redact(msg, tg)
	if strings.Contains(got, "Sup3r-Secret") {
		t.Fatalf("secret left in %q", got)
	}
	if !strings.Contains(got, "postgres://hopprobe:[REDACTED]@db:5432") {
		t.Fatalf("DSN not redacted readably: %q", got)
	}
	if got := probes.Redact("redis://:other-pass@host:6379", nil); strings.Contains(got, "other-pass") {
		t.Fatalf("URL password kept: %q", got)
	}
}

func ci() bool { return os.Getenv("CI") != "" }

// serveLoopback listens on loopback until the test ends (or the caller
// closes the listener) and hands every connection to handle on its own
// goroutine.
func serveLoopback(t *testing.T, handle func(net.Conn)) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
	return ln
}

// acceptAndClose listens on loopback and closes every connection at once.
func acceptAndClose(t *testing.T) net.Listener {
	t.Helper()
	return serveLoopback(t, func(c net.Conn) { c.Close() })
}

// A TLS handshake that completes after the request timed out must not
// reach a result that the caller already holds.
func TestHTTPLateHandshakeLeavesTheResultAlone(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		time.Sleep(250 * time.Millisecond) // the handshake answer arrives late
		up, err := net.Dial("tcp", addr(srv))
		if err != nil {
			return
		}
		defer up.Close()
		end := time.Now().Add(time.Second)
		_ = c.SetDeadline(end)
		_ = up.SetDeadline(end)
		go func() { _, _ = io.Copy(up, c) }()
		_, _ = io.Copy(c, up)
	}()
	tg := hop.Target{Address: ln.Addr().String(), Host: "example.com", Scheme: "https", TLS: caFile(t, srv)}
	r := run(t, hop.KindHTTP, tg, 100*time.Millisecond)
	wantFail(t, r, "no answer within 100ms")
	before := fmt.Sprint(r.Details, r.CertExpiry)
	<-done
	time.Sleep(50 * time.Millisecond)
	if after := fmt.Sprint(r.Details, r.CertExpiry); after != before {
		t.Fatalf("the result changed after the probe returned: %s, then %s", before, after)
	}
}

// The NodePort probe against each state a node can be in: answering
// HTTP, refusing, and accepting without ever answering; with and without
// the rule that the port must stay unreachable from this vantage.
func TestNodePortAgainstLiveClosedAndHangingNodes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	defer srv.Close()
	live := hop.Target{Address: addr(srv), Host: "127.0.0.1", Scheme: "http", Path: "/"}
	r := run(t, hop.KindNodePort, live, time.Second)
	wantOK(t, r)
	if r.Details["status"] != "200" {
		t.Fatalf("an HTTP NodePort must be checked over HTTP: %v", r.Details)
	}
	closed := acceptAndClose(t)
	gone := closed.Addr().String()
	closed.Close()
	wantFail(t, run(t, hop.KindNodePort, hop.Target{Address: gone, Scheme: "http"}, time.Second), "connection refused")
	hang := need(t, peers.Hang)
	wantHangBounded(t, hop.KindNodePort, hop.Target{Address: hang.Addr, Host: "127.0.0.1", Scheme: "http"}, 300*time.Millisecond)

	// Must stay internal: refused is healthy, anything that accepts is a
	// finding, even a node that then never answers.
	wantOK(t, run(t, hop.KindNodePort, hop.Target{Address: gone, ExpectUnreachable: true}, time.Second))
	wantFail(t, run(t, hop.KindNodePort, hop.Target{Address: addr(srv), ExpectUnreachable: true}, time.Second), "SECURITY")
	wantFail(t, run(t, hop.KindNodePort, hop.Target{Address: hang.Addr, ExpectUnreachable: true}, 300*time.Millisecond), "SECURITY")
}

// A name documented as dual stack needs both families: one with only A
// records fails and names the AAAA it lacks; one with both passes. A
// name not so documented passes with either.
func TestDualStackNamesNeedBothFamilies(t *testing.T) {
	server := dnsServer(t, func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		name, qt := q.Question[0].Name, q.Question[0].Qtype
		hdr := dns.RR_Header{Name: name, Rrtype: qt, Class: dns.ClassINET, Ttl: 5}
		switch {
		case qt == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.IPv4(127, 0, 0, 9)})
		case qt == dns.TypeAAAA && name == "both.example.test.":
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: net.IPv6loopback})
		}
		w.WriteMsg(m)
	})
	r := run(t, hop.KindDNS, hop.Target{Host: "v4only.example.test", Resolver: server, DualStack: true}, time.Second)
	wantFail(t, r, "returned no AAAA record for v4only.example.test, which is documented as dual stack")
	if r.Details["addresses"] != "127.0.0.9" {
		t.Errorf("the failed hop's evidence lacks the addresses it did get: %v", r.Details)
	}
	wantOK(t, run(t, hop.KindDNS, hop.Target{Host: "both.example.test", Resolver: server, DualStack: true}, time.Second))
	wantOK(t, run(t, hop.KindDNS, hop.Target{Host: "v4only.example.test", Resolver: server}, time.Second))
}
