package probes

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
	"time"
)

// httpProber sends one GET to Address on behalf of Host and checks the
// status, body and JSON fields. Phases follow blackbox_exporter: dns,
// connect, tls, first_byte (server processing), transfer.
type httpProber struct{}

func (httpProber) Probe(ctx context.Context, t *Target, rep *Report) error {
	tc, err := tlsConfig(t.TLS, t.Host)
	if err != nil {
		return err
	}
	// net/http dials and runs trace callbacks on its own goroutines, and a
	// dial can outlive a request that timed out, so everything they
	// observe goes through a sink that is sealed when Do returns.
	sink := &traceSink{}
	tr := &http.Transport{
		// Every probe opens its own connection: a pooled one would hide
		// connect and TLS time, and a dead peer behind a live socket.
		DisableKeepAlives: true,
		TLSClientConfig:   tc,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dr Report
			c, err := dial(ctx, t.Address, &dr)
			sink.do(func(s *traceSink) {
				s.rep.Phases = append(s.rep.Phases, dr.Phases...)
				s.conn = err == nil
				if err == nil {
					s.rep.Detail("remote", c.RemoteAddr().String())
				}
			})
			return c, err
		},
		ForceAttemptHTTP2: false,
		// net/http's default is 10 MB of headers; no component on a path
		// needs more than a few KiB, and a peer's header flood is cut
		// here long before the byte budget.
		MaxResponseHeaderBytes: maxHeaderBytes,
		// Each probe's connection is its own, so its buffers are
		// allocated per probe: net/http's 4 KiB each way were a third of
		// what a probe allocated (and so of the GC's work at 10,000
		// hops). A probe's request is a few hundred bytes; a longer
		// header line or body is read through the buffer in turns.
		WriteBufferSize: 1 << 10,
		ReadBufferSize:  2 << 10,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport: tr,
		// A redirect is an answer from this hop; following it would probe
		// a different one.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	trace := &httptrace.ClientTrace{
		TLSHandshakeStart: func() { sink.do(func(s *traceSink) { s.tlsStart = time.Now() }) },
		TLSHandshakeDone: func(cs tls.ConnectionState, _ error) {
			sink.do(func(s *traceSink) {
				s.rep.since("tls", s.tlsStart)
				recordCert(cs, &s.rep)
			})
		},
		WroteRequest:         func(httptrace.WroteRequestInfo) { sink.do(func(s *traceSink) { s.wroteAt = time.Now() }) },
		GotFirstResponseByte: func() { sink.do(func(s *traceSink) { s.firstByte = time.Now() }) },
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, requestURL(t), nil)
	if err != nil {
		return fmt.Errorf("cannot build request: %w", err)
	}
	req.Header.Set("User-Agent", "hopprobe")
	requestIDs(ctx, req.Header, rep)
	resp, err := client.Do(req)
	seen := sink.seal(rep)
	if err != nil {
		if seen.conn {
			err = connected(err)
		}
		return fmt.Errorf("GET %s via %s failed: %w", req.URL, t.Address, err)
	}
	defer resp.Body.Close()
	if !seen.wroteAt.IsZero() && !seen.firstByte.IsZero() {
		rep.AddPhase("first_byte", seen.firstByte.Sub(seen.wroteAt))
	}
	rep.Detail("status", strconv.Itoa(resp.StatusCode))
	recordHeaders(resp.Header, t.EvidenceHeaders, rep)
	start := time.Now()
	body, err := readLimited(resp.Body, t.MaxBodyBytes)
	rep.since("transfer", start)
	if err != nil {
		return connected(fmt.Errorf("reading the body from %s: %w", t.Address, err))
	}
	return connected(checkHTTP(t, resp, body))
}

// traceSink is what the transport's goroutines observed during one probe.
type traceSink struct {
	mu     sync.Mutex
	sealed bool
	rep    Report
	traceSeen
}

type traceSeen struct {
	conn                         bool
	tlsStart, wroteAt, firstByte time.Time
}

// do applies f unless the probe has already returned; a late callback
// from an abandoned dial is dropped.
func (s *traceSink) do(f func(*traceSink)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.sealed {
		f(s)
	}
}

// seal stops further updates, moves the phases and facts seen so far
// into rep and returns the rest.
func (s *traceSink) seal(rep *Report) traceSeen {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sealed = true
	rep.Phases = append(rep.Phases, s.rep.Phases...)
	if !s.rep.CertExpiry.IsZero() {
		rep.CertExpiry = s.rep.CertExpiry
	}
	for k, v := range s.rep.Details {
		rep.Detail(k, v)
	}
	return s.traceSeen
}

func requestURL(t *Target) string {
	scheme := t.Scheme
	if scheme == "" {
		scheme = "http"
	}
	path := t.Path
	if path == "" {
		path = "/"
	}
	host := t.Host
	if host == "" {
		// No virtual host to ask for: ask the address itself.
		host = t.Address
	}
	return scheme + "://" + host + path
}

// answeredBy names the layer that produced a response, from the headers
// proxies add; it turns "HTTP 502" into "HTTP 502 from alb-public".
func answeredBy(h http.Header) string {
	parts := []string{}
	if s := h.Get("Server"); s != "" {
		parts = append(parts, "server "+s)
	}
	if v := h.Values("Via"); len(v) > 0 {
		parts = append(parts, "via "+strings.Join(v, ", "))
	}
	return strings.Join(parts, "; ")
}

var errTooLarge = errors.New("exceeds the size limit")

// maxHeaderBytes bounds the response headers of an HTTP or WebSocket hop.
const maxHeaderBytes = 64 << 10

func readLimited(r io.Reader, limit int64) ([]byte, error) {
	if limit <= 0 {
		limit = 1 << 20
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("body %w of %d bytes", errTooLarge, limit)
	}
	return b, nil
}

func checkHTTP(t *Target, resp *http.Response, body []byte) error {
	e := t.Expect
	ok := resp.StatusCode >= 200 && resp.StatusCode < 400
	if len(e.Status) > 0 {
		ok = false
		for _, s := range e.Status {
			ok = ok || s == resp.StatusCode
		}
	}
	if !ok {
		want := "2xx or 3xx"
		if len(e.Status) > 0 {
			want = fmt.Sprint(e.Status)
		}
		msg := fmt.Sprintf("HTTP %d from %s, want %s", resp.StatusCode, t.Address, want)
		if by := answeredBy(resp.Header); by != "" {
			msg += " (" + by + ")"
		}
		return errors.New(msg)
	}
	if e.BodyContains != "" && !strings.Contains(string(body), e.BodyContains) {
		return fmt.Errorf("body from %s does not contain %q", t.Address, e.BodyContains)
	}
	if len(e.JSON) > 0 {
		return checkJSON(body, e.JSON)
	}
	return nil
}

// checkJSON compares dotted field paths ("data.status") with their
// expected text.
func checkJSON(body []byte, want map[string]string) error {
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		return fmt.Errorf("body is not JSON: %w", err)
	}
	for path, exp := range want {
		v := doc
		for _, k := range strings.Split(path, ".") {
			m, ok := v.(map[string]any)
			if !ok {
				return fmt.Errorf("JSON field %s is missing", path)
			}
			if v, ok = m[k]; !ok {
				return fmt.Errorf("JSON field %s is missing", path)
			}
		}
		if got := fmt.Sprint(v); got != exp {
			return fmt.Errorf("JSON field %s is %q, want %q", path, got, exp)
		}
	}
	return nil
}
