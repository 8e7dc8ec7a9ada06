package probes_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/internal/peers"
	"github.com/allinx/hopprobe/probes"
)

// h3Server is a real quic-go HTTP/3 server on a loopback UDP port, with
// the certificate of a throw-away PKI for edge.example.test.
func h3Server(t *testing.T, h http.Handler) (string, *config.TLS) {
	t.Helper()
	pki, err := peers.NewPKI(t.TempDir(), []string{"edge.example.test"}, "client")
	if err != nil {
		t.Fatal(err)
	}
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http3.Server{Handler: h, TLSConfig: http3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{pki.Server}})}
	done := make(chan struct{})
	go func() { srv.Serve(udp); close(done) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		srv.Close()
		udp.Close()
		<-done
	})
	return udp.LocalAddr().String(), &config.TLS{CAFile: pki.CA}
}

// A hop that must speak h3 does, over QUIC, to a real HTTP/3 server:
// status, evidence headers, certificate and phases as over TCP.
func TestH3IsProbedOverQUIC(t *testing.T) {
	addr, tc := h3Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", "CloudFront")
		w.Header().Set("Via", "3 abc.cloudfront.net (CloudFront)")
		w.Write([]byte(r.Proto))
	}))
	tg := hop.Target{Address: addr, Host: "edge.example.test", Scheme: "https", Path: "/", TLS: tc, MaxBodyBytes: 1 << 20, Protocols: []string{"h3"}}
	r := run(t, hop.KindHTTP, tg, 5*time.Second)
	wantOK(t, r)
	if r.Details["protocol"] != "h3" || r.Details["protocol.h3"] != "ok" || r.Details["header.server"] != "CloudFront" {
		t.Errorf("details %v", r.Details)
	}
	if r.CertExpiry.IsZero() {
		t.Error("no certificate expiry from the QUIC handshake")
	}
}

// Over QUIC the same bounds hold: the body limit, the byte budget, the
// deadline when nothing answers on UDP, the certificate check.
func TestH3KeepsTheBounds(t *testing.T) {
	addr, tc := h3Server(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte(strings.Repeat("x", 2<<20)))
	}))
	tg := hop.Target{Address: addr, Host: "edge.example.test", Scheme: "https", Path: "/", TLS: tc, MaxBodyBytes: 1 << 20, Protocols: []string{"h3"}}
	wantFail(t, run(t, hop.KindHTTP, tg, 5*time.Second), "exceeds the size limit")
	tg.MaxBodyBytes, tg.MaxResponseBytes = 4<<20, 256<<10
	wantFail(t, run(t, hop.KindHTTP, tg, 5*time.Second), "max_response_bytes")

	// A UDP port where nothing answers (a blocked UDP/443): the probe
	// fails at its timeout, not later.
	silent, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	tg = hop.Target{Address: silent.LocalAddr().String(), Host: "edge.example.test", Scheme: "https", Path: "/", TLS: tc, Protocols: []string{"h3"}}
	start := time.Now()
	r := run(t, hop.KindHTTP, tg, 700*time.Millisecond)
	if r.Success || time.Since(start) > 700*time.Millisecond+2*time.Second {
		t.Errorf("a silent UDP port: success %v after %s: %s", r.Success, time.Since(start), r.Error)
	}
	wantFail(t, r, "h3: ")

	// The wrong certificate authority fails the handshake.
	tg = hop.Target{Address: addr, Host: "edge.example.test", Scheme: "https", Path: "/", Protocols: []string{"h3"}}
	wantFail(t, run(t, hop.KindHTTP, tg, 5*time.Second), "certificate")
}

// Hostile HTTP/3 answers, from a real quic-go server: a header list far
// past 64 KiB and a response that never ends each fail the hop within
// its timeout.
func TestH3HostileAnswersAreBounded(t *testing.T) {
	giant, tc := h3Server(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		for i := range 200 {
			w.Header().Set("X-Flood-"+strconv.Itoa(i), strings.Repeat("h", 1000))
		}
	}))
	tg := hop.Target{Address: giant, Host: "edge.example.test", Scheme: "https", Path: "/", TLS: tc, MaxBodyBytes: 1 << 20, Protocols: []string{"h3"}}
	r := run(t, hop.KindHTTP, tg, 5*time.Second)
	if r.Success {
		t.Fatal("200 KB of headers over HTTP/3 passed")
	}
	t.Logf("giant headers over h3: %s", r.Error)
	endless, tc := h3Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := []byte(strings.Repeat("d", 16<<10))
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	tg = hop.Target{Address: endless, Host: "edge.example.test", Scheme: "https", Path: "/", TLS: tc, MaxBodyBytes: 1 << 20, Protocols: []string{"h3"}}
	start := time.Now()
	r = run(t, hop.KindHTTP, tg, 5*time.Second)
	if r.Success || time.Since(start) > 6*time.Second {
		t.Fatalf("an endless HTTP/3 response: success %v after %s: %s", r.Success, time.Since(start), r.Error)
	}
	wantFail(t, r, "exceeds the size limit")
}

// A QPACK bomb over real QUIC: an HTTP/3 server written at the frame
// level answers with a HEADERS frame of 60,000 one-byte references to
// the QPACK static table's longest entry (content-security-policy, about
// 80 bytes each): 60 KB on the wire, under the 64 KiB frame limit, that
// decode to 4.8 MB. The decoded field list is bounded at 64 KiB too, so
// the hop fails there.
func TestH3QPACKBombIsBoundedWhenDecoded(t *testing.T) {
	pki, err := peers.NewPKI(t.TempDir(), []string{"edge.example.test"}, "client")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := quic.ListenAddr("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pki.Server}, NextProtos: []string{http3.NextProtoH3}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() {
		defer close(served)
		conn, err := ln.Accept(ctx)
		if err != nil {
			return
		}
		defer conn.CloseWithError(0, "")
		// The control stream: its type (0x00), then an empty SETTINGS.
		if ctl, err := conn.OpenUniStream(); err == nil {
			ctl.Write([]byte{0x00, 0x04, 0x00})
		}
		str, err := conn.AcceptStream(ctx)
		if err != nil {
			return
		}
		// QPACK: Required Insert Count 0, Base 0, ":status 200" (static
		// 25), then static 56 (content-security-policy) again and again.
		block := append([]byte{0x00, 0x00, 0xc0 | 25}, bytes.Repeat([]byte{0xc0 | 56}, 60000)...)
		frame := append([]byte{0x01, 0x80 | byte(len(block)>>24), byte(len(block) >> 16), byte(len(block) >> 8), byte(len(block))}, block...)
		str.Write(frame)
		<-ctx.Done()
	}()
	tg := hop.Target{Address: ln.Addr().String(), Host: "edge.example.test", Scheme: "https", Path: "/",
		TLS: &config.TLS{CAFile: pki.CA}, MaxBodyBytes: 1 << 20, Protocols: []string{"h3"}}
	r := run(t, hop.KindHTTP, tg, 5*time.Second)
	wantFail(t, r, "headers too large")
	cancel()
	<-served
}

// An HTTP/3 probe returns at once when its context is cancelled (a
// reload, a shutdown), in the middle of a QUIC handshake nobody answers.
func TestH3ReturnsPromptlyOnCancel(t *testing.T) {
	silent, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	tg := hop.Target{Address: silent.LocalAddr().String(), Host: "edge.example.test", Scheme: "https", Path: "/", Protocols: []string{"h3"}}
	// Baseline: a probe cancelled before it starts, on this machine now.
	b0 := time.Now()
	bctx, bcancel := context.WithCancel(context.Background())
	bcancel()
	probes.Run(bctx, hop.KindHTTP, &tg, 10*time.Second)
	baseline := time.Since(b0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan hop.Result)
	go func() { done <- probes.Run(ctx, hop.KindHTTP, &tg, 30*time.Second) }()
	time.Sleep(300 * time.Millisecond)
	cancelled := time.Now()
	cancel()
	select {
	case r := <-done:
		if late := time.Since(cancelled); r.Success || late > 100*time.Millisecond+baseline {
			t.Errorf("returned %s after cancel (baseline %s), success %v: %s", late, baseline, r.Success, r.Error)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the HTTP/3 probe ignored its cancellation")
	}
}
