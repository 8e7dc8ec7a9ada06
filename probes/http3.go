package probes

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/allinx/hopprobe/hop"
)

// QUIC flow-control windows of an HTTP/3 probe: a probe reads one small
// answer, so the peer may never have much more in flight than the body
// limit allows (quic-go's defaults grow to 6 and 15 MiB).
const (
	h3StreamWindow     = 256 << 10
	h3ConnectionWindow = 1 << 20
)

// exchangeH3 makes the request over HTTP/3 (QUIC, quic-go) to the hop's
// address on UDP. Every datagram counts against the probe's byte budget
// (the socket is guarded like any connection, and closed when the probe
// ends), the handshake and the exchange end at the probe's deadline,
// and the connection, its transport and their goroutines are closed
// before it returns.
func exchangeH3(ctx context.Context, t *hop.Target, req *http.Request, tc *tls.Config, rep *hop.Report) error {
	failed := func(err error) error {
		return fmt.Errorf("GET %s via %s over QUIC failed: %w", req.URL, t.Address, err)
	}
	tc.NextProtos = []string{http3.NextProtoH3}
	start := time.Now()
	peer, err := resolveUDP(ctx, t.Address)
	if err != nil {
		return failed(err)
	}
	since(rep, "dns", start)
	var local *net.UDPAddr
	if a, ok := localAddr("udp", peer.String()).(*net.UDPAddr); ok {
		local = a
	}
	udp, err := net.ListenUDP("udp", local)
	if err != nil {
		return failed(err)
	}
	sock := quicSocket{scopeOf(ctx).guard(udp).(net.PacketConn)}
	defer sock.Close()
	tr := &quic.Transport{Conn: sock}
	defer tr.Close()
	left := time.Until(deadlineOr(ctx, 30*time.Second))
	qc := &quic.Config{HandshakeIdleTimeout: left, MaxIdleTimeout: left,
		InitialStreamReceiveWindow: h3StreamWindow, MaxStreamReceiveWindow: h3StreamWindow,
		InitialConnectionReceiveWindow: h3ConnectionWindow, MaxConnectionReceiveWindow: h3ConnectionWindow,
		// The server may open HTTP/3's control and QPACK streams, no
		// request streams.
		MaxIncomingStreams: -1, MaxIncomingUniStreams: 8}
	start = time.Now()
	conn, err := tr.Dial(ctx, peer, tc, qc)
	since(rep, "tls", start)
	if err != nil {
		return failed(err)
	}
	defer conn.CloseWithError(0, "")
	rep.Detail("remote", peer.String())
	recordCert(conn.ConnectionState().TLS, rep)
	rep.Detail("protocol", "h3")
	h3 := &http3.Transport{MaxResponseHeaderBytes: maxHeaderBytes, DisableCompression: true}
	start = time.Now()
	resp, err := h3.NewClientConn(conn).RoundTrip(req)
	if err != nil {
		return connected(failed(err))
	}
	since(rep, "first_byte", start)
	return checkResponse(t, resp, rep)
}

// resolveUDP resolves addr's host (an IP, or a name under the probe's
// deadline) to the first address it has.
func resolveUDP(ctx context.Context, addr string) (*net.UDPAddr, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ap, err := netip.ParseAddrPort(net.JoinHostPort(host, port))
	if err != nil {
		ips, lerr := systemResolver().LookupNetIP(ctx, "ip", host)
		if lerr != nil {
			return nil, lerr
		}
		if len(ips) == 0 {
			return nil, fmt.Errorf("%s has no address", host)
		}
		p, perr := net.LookupPort("udp", port)
		if perr != nil {
			return nil, perr
		}
		ap = netip.AddrPortFrom(ips[0].Unmap(), uint16(p))
	}
	return net.UDPAddrFromAddrPort(ap), nil
}

// deadlineOr is ctx's deadline, or d from now when it has none.
func deadlineOr(ctx context.Context, d time.Duration) time.Time {
	if dl, ok := ctx.Deadline(); ok {
		return dl
	}
	return time.Now().Add(d)
}

// quicSocket is a probe's guarded UDP socket as quic-go sees it. It keeps
// the kernel's default buffers: quic-go would raise them to 7 MiB (and
// log, once per process, when it cannot), but a probe reads one small
// answer through windows of a few hundred KiB.
type quicSocket struct{ net.PacketConn }

func (quicSocket) SetReadBuffer(int) error  { return nil }
func (quicSocket) SetWriteBuffer(int) error { return nil }
