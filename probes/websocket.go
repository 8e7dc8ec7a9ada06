package probes

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// wsProber opens a WebSocket through Address on behalf of Host, then
// optionally sends Expect.Send and waits for a message containing
// Expect.Reply.
type wsProber struct{}

func (wsProber) Probe(ctx context.Context, t *Target, rep *Report) error {
	tc, err := tlsConfig(t.TLS, t.Host)
	if err != nil {
		return err
	}
	var conn bool
	d := websocket.Dialer{
		NetDialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			c, err := dial(ctx, t.Address, rep)
			conn = err == nil
			return c, err
		},
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
	c, resp, err := d.DialContext(ctx, url, http.Header{"User-Agent": {"hopprobe"}})
	rep.since("handshake", start)
	if resp != nil {
		rep.Detail("status", fmt.Sprint(resp.StatusCode))
		if by := answeredBy(resp.Header); by != "" {
			rep.Detail("answered_by", by)
		}
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
	if tconn, ok := c.NetConn().(*tls.Conn); ok {
		recordCert(tconn.ConnectionState(), rep)
	}
	if t.Expect.Send == "" {
		return nil
	}
	limit := t.MaxBodyBytes
	if limit <= 0 {
		limit = 1 << 20
	}
	c.SetReadLimit(limit)
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetWriteDeadline(dl)
		_ = c.SetReadDeadline(dl)
	}
	// Unblock a read that would outlive a cancelled (not only expired) ctx.
	stop := context.AfterFunc(ctx, func() { _ = c.NetConn().SetDeadline(time.Now()) })
	defer stop()
	start = time.Now()
	if err := c.WriteMessage(websocket.TextMessage, []byte(t.Expect.Send)); err != nil {
		return connected(fmt.Errorf("sending the probe message to %s: %w", t.Address, err))
	}
	for {
		_, msg, err := c.ReadMessage()
		if err != nil {
			rep.since("reply", start)
			return connected(fmt.Errorf("no reply containing %q from %s: %w", t.Expect.Reply, t.Address, err))
		}
		if strings.Contains(string(msg), t.Expect.Reply) {
			rep.since("reply", start)
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
