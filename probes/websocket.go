package probes

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/internal/buildinfo"
)

// wsProber opens a WebSocket through Address on behalf of Host, then
// optionally sends Expect.Send and waits for a message containing
// Expect.Reply.
type wsProber struct{}

func (wsProber) Probe(ctx context.Context, t *hop.Target, rep *hop.Report) error {
	tc, err := tlsConfig(t.TLS, t.Host)
	if err != nil {
		return err
	}
	var conn bool
	// gorilla reads the handshake response with no bound on its headers;
	// the handshake gets the HTTP hop's header limit (plus one read-ahead
	// buffer), the messages after it MaxBodyBytes each.
	var hs *headerLimit
	d := websocket.Dialer{
		NetDialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			c, err := dialTarget(ctx, t, rep)
			conn = err == nil
			if err != nil {
				return nil, err
			}
			rep.Detail("remote", c.RemoteAddr().String())
			hs = &headerLimit{Conn: c, left: maxHeaderBytes + wsReadBuffer, what: "the WebSocket handshake response is"}
			return hs, nil
		},
		ReadBufferSize:  wsReadBuffer,
		TLSClientConfig: tc,
	}
	if dl, ok := ctx.Deadline(); ok {
		d.HandshakeTimeout = time.Until(dl)
	}
	scheme := "ws"
	if t.Scheme == "https" {
		scheme = "wss"
	}
	path := t.Path
	if path == "" {
		path = "/"
	}
	url := scheme + "://" + t.Host + path
	start := time.Now()
	h := http.Header{"User-Agent": {buildinfo.Get().UserAgent()}}
	requestIDs(ctx, h, rep)
	c, resp, err := d.DialContext(ctx, url, h)
	since(rep, "handshake", start)
	if resp != nil {
		rep.Detail("status", fmt.Sprint(resp.StatusCode))
		recordHeaders(resp.Header, t.EvidenceHeaders, rep)
	}
	if err != nil {
		if resp != nil {
			return connected(fmt.Errorf("WebSocket handshake for %s via %s refused: HTTP %d (%s)", url, t.Address, resp.StatusCode, answeredBy(resp.Header)))
		}
		if conn {
			err = connected(err)
		}
		return fmt.Errorf("WebSocket handshake for %s via %s failed: %w", url, t.Address, err)
	}
	defer c.Close()
	// The probe offers no extension. gorilla still turns decompression on
	// when the answer names permessage-deflate, and its read limit counts
	// compressed bytes: one frame could inflate a thousandfold. RFC 6455
	// forbids a server to answer with an extension not offered.
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
		return connected(fmt.Errorf("WebSocket handshake for %s via %s: the server turned on extension %q, which the probe did not offer", url, t.Address, ext))
	}
	hs.done.Store(true)
	if tconn, ok := c.NetConn().(*tls.Conn); ok {
		recordCert(tconn.ConnectionState(), rep)
	}
	if t.Expect.Send == "" {
		return nil
	}
	limit := t.MaxBodyBytes
	if limit <= 0 {
		limit = config.DefaultMaxBodyBytes
	}
	c.SetReadLimit(limit)
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetWriteDeadline(dl)
		_ = c.SetReadDeadline(dl)
	}
	start = time.Now()
	if err := c.WriteMessage(websocket.TextMessage, []byte(t.Expect.Send)); err != nil {
		return connected(fmt.Errorf("sending the probe message to %s: %w", t.Address, err))
	}
	for {
		_, msg, err := c.ReadMessage()
		if err != nil {
			since(rep, "reply", start)
			if errors.Is(err, websocket.ErrReadLimit) {
				err = fmt.Errorf("a message longer than %d bytes (max_body_bytes): %w", limit, err)
			}
			return connected(fmt.Errorf("no reply containing %q from %s: %w", t.Expect.Reply, t.Address, err))
		}
		if strings.Contains(string(msg), t.Expect.Reply) {
			since(rep, "reply", start)
			closeBy := time.Now().Add(time.Second)
			if dl, ok := ctx.Deadline(); ok && dl.Before(closeBy) {
				closeBy = dl
			}
			_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), closeBy)
			return nil
		}
		// Servers push unsolicited frames (tickers); keep reading until
		// the reply or the deadline.
	}
}

const wsReadBuffer = 4096
