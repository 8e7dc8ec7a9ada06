package probes

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/internal/buildinfo"
)

// httpProber sends one GET to Address on behalf of Host and checks the
// status, body and JSON fields. Phases follow blackbox_exporter: dns,
// connect, tls, first_byte (server processing), transfer.
//
// The exchange runs on the probe's own goroutine over its own
// connection: net/http writes the request and parses the response, but
// its Transport is not used. A Transport pools connections, which a
// probe must not (a pooled connection hides connect and TLS time, and a
// dead peer behind a live socket), and it runs every request on three
// goroutines of its own (dial, read loop, write loop) that hand off to
// each other. Measured at 1,000 hops every 15 s, those hand-offs woke
// the runtime's other thread for every probe; see docs/performance.md.
type httpProber struct{}

// httpReadBuffer and httpWriteBuffer size the probe's buffers. A probe's
// request is a few hundred bytes; a longer header line or body is read
// through the buffer in turns (net/http's 4 KiB each way were a third
// of what a probe allocated).
const (
	httpReadBuffer  = 2 << 10
	httpWriteBuffer = 1 << 10
	// max1xx is how many informational responses are skipped before
	// the final one, as net/http's Transport does.
	max1xx = 5
)

func (httpProber) Probe(ctx context.Context, t *hop.Target, rep *hop.Report) error {
	if len(t.Protocols) == 0 {
		return exchangeHTTP(ctx, t, rep, "")
	}
	// Each version the hop must speak, on a connection of its own; the
	// first one's phases are the hop's, every one's outcome a detail.
	for i, proto := range t.Protocols {
		r := rep
		if i > 0 {
			r = &hop.Report{}
		}
		err := exchangeHTTP(ctx, t, r, proto)
		if i > 0 {
			for k, v := range r.Details {
				if _, ok := rep.Details[k]; !ok {
					rep.Detail(k, v)
				}
			}
		}
		if err != nil {
			rep.Detail("protocol."+proto, "failed")
			return fmt.Errorf("%s: %w", proto, err)
		}
		rep.Detail("protocol."+proto, "ok")
	}
	return nil
}

// exchangeHTTP makes one request. want is the HTTP version to speak:
// "http/1.1", "h2" (negotiated by ALPN, a failure when the server will
// not), "h3" (QUIC), or "" for what a browser does: offer h2 and
// http/1.1 over TLS and take the server's choice. The version that
// answered is the detail "protocol".
func exchangeHTTP(ctx context.Context, t *hop.Target, rep *hop.Report, want string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, requestURL(t), nil)
	if err != nil {
		return fmt.Errorf("cannot build request: %w", err)
	}
	req.Header.Set("User-Agent", buildinfo.Get().UserAgent())
	req.Close = true
	requestIDs(ctx, req.Header, rep)
	failed := func(err error) error { return fmt.Errorf("GET %s via %s failed: %w", req.URL, t.Address, err) }
	var tc *tls.Config
	if req.URL.Scheme == "https" {
		// The name asked for is the virtual host, else the address (an
		// IP checked against the certificate's IP names), as net/http
		// asks.
		if tc, err = tlsConfig(t.TLS, req.URL.Hostname()); err != nil {
			return err
		}
		switch want {
		case "":
			tc.NextProtos = []string{"h2", "http/1.1"}
		case "h3":
			return exchangeH3(ctx, t, req, tc, rep)
		case "h2":
			// Offered beside http/1.1, as a browser does, so that an edge
			// without h2 answers the handshake and the reason is its
			// choice, not a refused handshake.
			tc.NextProtos = []string{"h2", "http/1.1"}
		default:
			tc.NextProtos = []string{want}
		}
	}
	raw, err := dialTarget(ctx, t, rep)
	if err != nil {
		return failed(err)
	}
	defer raw.Close()
	rep.Detail("remote", raw.RemoteAddr().String())
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
	}
	conn := raw
	proto := "http/1.1"
	if tc != nil {
		tconn := tls.Client(raw, tc)
		start := time.Now()
		err := tconn.HandshakeContext(ctx)
		since(rep, "tls", start)
		if err != nil {
			return connected(failed(err))
		}
		cs := tconn.ConnectionState()
		recordCert(cs, rep)
		if cs.NegotiatedProtocol == "h2" {
			proto = "h2"
		}
		if want == "h2" && proto != "h2" {
			return connected(failed(fmt.Errorf("the server does not speak h2: ALPN chose %s", cmp.Or(cs.NegotiatedProtocol, "nothing"))))
		}
		conn = tconn
	}
	rep.Detail("protocol", proto)
	var resp *http.Response
	if proto == "h2" {
		resp, err = roundTripH2(ctx, conn, req, rep)
	} else {
		resp, err = roundTripH1(conn, req, rep)
	}
	if err != nil {
		return connected(failed(err))
	}
	return checkResponse(t, resp, rep)
}

// checkResponse reads and checks the answer, whichever version brought
// it, and records its evidence.
func checkResponse(t *hop.Target, resp *http.Response, rep *hop.Report) error {
	defer resp.Body.Close()
	rep.Detail("status", strconv.Itoa(resp.StatusCode))
	recordHeaders(resp.Header, t.EvidenceHeaders, rep)
	start := time.Now()
	body, err := readLimited(resp.Body, t.MaxBodyBytes)
	since(rep, "transfer", start)
	if err != nil {
		return connected(fmt.Errorf("reading the body from %s: %w", t.Address, err))
	}
	if err := checkHTTP(t, resp, body); err != nil {
		return connected(err)
	}
	return connected(checkAltSvc(t, resp.Header))
}

// checkAltSvc: a hop that must announce a protocol (alt_svc: h3) does,
// in an Alt-Svc entry for it ("h3=\":443\"; ma=86400").
func checkAltSvc(t *hop.Target, h http.Header) error {
	if t.AltSvc == "" {
		return nil
	}
	for _, v := range h.Values("Alt-Svc") {
		for entry := range strings.SplitSeq(v, ",") {
			if proto, _, _ := strings.Cut(strings.TrimSpace(entry), "="); proto == t.AltSvc {
				return nil
			}
		}
	}
	return fmt.Errorf("%s does not announce %s in Alt-Svc (it sent %q)", t.Address, t.AltSvc, hop.Clean(strings.Join(h.Values("Alt-Svc"), ", "), 128))
}

// roundTripH1 writes the request and reads the response on conn.
func roundTripH1(conn net.Conn, req *http.Request, rep *hop.Report) (*http.Response, error) {
	// A redirect is an answer from this hop; it is never followed, as
	// following it would probe a different one.
	bw := bufio.NewWriterSize(conn, httpWriteBuffer)
	if err := req.Write(bw); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	wrote := time.Now()
	// net/http's default is 10 MB of headers; no component on a path
	// needs more than a few KiB, and a peer's header flood is cut here
	// long before the byte budget.
	lim := &headerLimit{Conn: conn, left: maxHeaderBytes + httpReadBuffer, what: "the HTTP response headers are"}
	br := bufio.NewReaderSize(lim, httpReadBuffer)
	if _, err := br.Peek(1); err != nil {
		return nil, fmt.Errorf("no response: %w", err)
	}
	since(rep, "first_byte", wrote)
	resp, err := readResponse(br, req)
	if err != nil {
		return nil, err
	}
	lim.done.Store(true)
	return resp, nil
}

// roundTripH2 sends the request as the one stream of an HTTP/2
// connection on conn, the TLS connection this probe made and timed: a
// net/http client connection (Transport.NewClientConn) whose dial hands
// over conn, never a pooled Transport, with the same header bound as
// HTTP/1.1. Closing the response body closes the connection and ends its
// read loop.
func roundTripH2(ctx context.Context, conn net.Conn, req *http.Request, rep *hop.Report) (*http.Response, error) {
	var protos http.Protocols
	protos.SetHTTP2(true)
	tr := &http.Transport{Protocols: &protos, MaxResponseHeaderBytes: maxHeaderBytes, DisableCompression: true,
		DialTLSContext: func(context.Context, string, string) (net.Conn, error) { return conn, nil }}
	cc, err := tr.NewClientConn(ctx, "https", net.JoinHostPort(req.URL.Hostname(), "443"))
	if err != nil {
		return nil, err
	}
	start := time.Now()
	resp, err := cc.RoundTrip(req)
	if err != nil {
		cc.Close()
		if strings.Contains(err.Error(), "PROTOCOL_ERROR") {
			return nil, fmt.Errorf("the HTTP/2 peer broke the protocol (a response header block over %s is one way): %w", byteSize(maxHeaderBytes), err)
		}
		return nil, err
	}
	since(rep, "first_byte", start)
	resp.Body = closeBoth{resp.Body, cc}
	return resp, nil
}

// closeBoth closes a response body and then its connection.
type closeBoth struct {
	io.ReadCloser
	conn io.Closer
}

func (c closeBoth) Close() error {
	err := c.ReadCloser.Close()
	c.conn.Close()
	return err
}

// readResponse reads the final response, skipping informational ones
// (1xx but 101, which is final) as a Transport does.
func readResponse(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	for range max1xx + 1 {
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode < 100 || resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, nil
		}
	}
	return nil, fmt.Errorf("more than %d informational (1xx) responses", max1xx)
}

func requestURL(t *hop.Target) string {
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
		limit = config.DefaultMaxBodyBytes
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("body %w of %d bytes (max_body_bytes)", errTooLarge, limit)
	}
	return b, nil
}

func checkHTTP(t *hop.Target, resp *http.Response, body []byte) error {
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
	if ce := resp.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") && (e.BodyContains != "" || len(e.JSON) > 0) {
		// The probe asks for no encoding and inflates none, so that a
		// small compressed body cannot become a large one; a server that
		// encodes anyway sent bytes the body checks cannot read.
		return fmt.Errorf("%s answered with Content-Encoding %q, which the probe did not ask for; the body checks read the body as sent, and the probe inflates nothing", t.Address, hop.Clean(ce, 32))
	}
	if e.BodyContains != "" && !strings.Contains(string(body), e.BodyContains) {
		return fmt.Errorf("body from %s does not contain %q", t.Address, e.BodyContains)
	}
	if len(e.JSON) > 0 {
		return checkJSON(body, e.JSON)
	}
	return nil
}

// maxJSONDepth bounds how deeply a checked JSON body may nest.
const maxJSONDepth = 64

// checkJSON compares dotted field paths ("data.status") with their
// expected text. The body is never built into a tree: the values along
// the paths are read as tokens, everything else is checked and skipped,
// so a peer's array of half a million elements costs the probe 5 bytes
// allocated per body byte, short-lived, where a decoded []any took 43,
// all alive at once (TestCheckingJSONBuildsNothingFromTheBody); nesting
// deeper than maxJSONDepth along a path is refused.
func checkJSON(body []byte, want map[string]string) error {
	paths := make(map[string][]string, len(want))
	for p := range want {
		paths[p] = strings.Split(p, ".")
	}
	got := map[string]string{}
	dec := json.NewDecoder(bytes.NewReader(body))
	var at []*string // the keys down to here; nil for an array element
	if err := walkJSON(dec, &at, paths, got); err != nil {
		return fmt.Errorf("body is not JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("body is not JSON: more after its top-level value")
	}
	for _, p := range slices.Sorted(maps.Keys(want)) {
		v, ok := got[p]
		if !ok {
			return fmt.Errorf("JSON field %s is missing", p)
		}
		if v != want[p] {
			return fmt.Errorf("JSON field %s is %q, want %q", p, v, want[p])
		}
	}
	return nil
}

// walkJSON reads one value, recording in got the text of every scalar
// that sits at one of paths. A value no path leads into is skipped whole
// (encoding/json's scanner checks it without building it, and its own
// depth limit holds); only the values along the paths are read token by
// token.
func walkJSON(dec *json.Decoder, at *[]*string, paths map[string][]string, got map[string]string) error {
	if !leadsSomewhere(*at, paths) {
		var skip json.RawMessage
		return dec.Decode(&skip)
	}
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	d, nested := tok.(json.Delim)
	if !nested {
		for name, p := range paths {
			if keysAre(*at, p) {
				got[name] = fmt.Sprint(tok)
			}
		}
		return nil
	}
	if len(*at) >= maxJSONDepth {
		return fmt.Errorf("nested deeper than %d levels", maxJSONDepth)
	}
	for dec.More() {
		var key *string
		if d == '{' {
			kt, err := dec.Token()
			if err != nil {
				return err
			}
			k, _ := kt.(string)
			key = &k
		}
		*at = append(*at, key)
		err := walkJSON(dec, at, paths, got)
		*at = (*at)[:len(*at)-1]
		if err != nil {
			return err
		}
	}
	_, err = dec.Token() // the closing delimiter
	return err
}

// leadsSomewhere reports whether one of paths runs through (or ends at)
// the value the keys at lead to.
func leadsSomewhere(at []*string, paths map[string][]string) bool {
	for _, p := range paths {
		if len(at) <= len(p) && keysAre(at, p[:len(at)]) {
			return true
		}
	}
	return false
}

// keysAre reports whether the keys down to a value are path's.
func keysAre(at []*string, path []string) bool {
	if len(at) != len(path) {
		return false
	}
	for i, k := range at {
		if k == nil || *k != path[i] {
			return false
		}
	}
	return true
}

// headerLimit fails reads past left bytes until done: the response
// headers of an HTTP hop, the handshake of a WebSocket one.
type headerLimit struct {
	net.Conn
	left int64
	// what names the part read, as the error says it.
	what string
	done atomic.Bool
}

func (h *headerLimit) Read(p []byte) (int, error) {
	if h.done.Load() {
		return h.Conn.Read(p)
	}
	if h.left <= 0 {
		return 0, fmt.Errorf("%s larger than %s", h.what, byteSize(maxHeaderBytes))
	}
	if int64(len(p)) > h.left {
		p = p[:h.left]
	}
	n, err := h.Conn.Read(p)
	h.left -= int64(n)
	return n, err
}
