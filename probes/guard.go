package probes

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/hop"
)

// DefaultMaxResponseBytes is what one probe may read from its peers, all
// connections together, when the topology sets no max_response_bytes. It
// is far above what a healthy answer of any probe needs (the largest, an
// HTTP body, is capped at max_body_bytes, 1 MiB by default) and far below
// the Deployment's 256 MiB memory limit.
const DefaultMaxResponseBytes = config.DefaultMaxResponseBytes

// ErrResponseTooLarge is the reason of a hop whose peers sent more than
// the probe's byte budget.
var ErrResponseTooLarge = errors.New("the peer sent more than the probe may read")

// scope is what one probe owns while it runs: a byte budget shared by
// all of its connections, and the connections themselves, which are
// closed when the probe's context ends. Closing them is what makes every
// client library return promptly on cancellation, whatever it does with
// its own deadlines, and what keeps a library's late goroutine from
// holding a socket after the probe returned.
type scope struct {
	limit int64
	read  atomic.Int64
	// over is the first limit a peer ran into, as the operator should
	// read it; libraries wrap, replace or drop the errors they get.
	over atomic.Pointer[error]
	// abort ends the probe at once when a limit is hit: a library that
	// retries (gRPC reconnects) would otherwise go on until the timeout.
	abort context.CancelCauseFunc

	// gate refuses a dial to an address the store's credentials must
	// not go to (nil: every address): see credentialGate.
	gate func(addr string) error
	// names are the host names the topology gives the store; a peer
	// whose verified certificate is for one of them passes the gate.
	names []string

	mu     sync.Mutex
	conns  []net.Conn
	closed bool
	unhook func() bool // stops ending the scope when the context ends
}

type scopeKey struct{}

// withScope starts a probe's scope; end closes whatever is still open.
func withScope(ctx context.Context, limit int64) (context.Context, *scope) {
	if limit <= 0 {
		limit = DefaultMaxResponseBytes
	}
	ctx, abort := context.WithCancelCause(ctx)
	s := &scope{limit: limit, abort: abort}
	s.endWith(ctx)
	return context.WithValue(ctx, scopeKey{}, s), s
}

// scopeOf returns the probe's scope. A prober called outside Run (a
// benchmark, a test of one prober) gets a fresh one with the default
// budget, closed when ctx ends.
func scopeOf(ctx context.Context) *scope {
	if s, ok := ctx.Value(scopeKey{}).(*scope); ok {
		return s
	}
	s := &scope{limit: DefaultMaxResponseBytes, abort: func(error) {}}
	s.endWith(ctx)
	return s
}

// guard wraps a freshly dialled connection: its reads count against the
// budget, and it is closed when the probe ends. A connection that arrives
// after the probe ended (a library's late dial) is closed at once.
func (s *scope) guard(c net.Conn) net.Conn {
	var g net.Conn = &guardedConn{Conn: c, s: s}
	if pc, ok := c.(net.PacketConn); ok {
		// UDP stays a packet connection (the DNS client reads datagrams
		// from those and length-prefixed messages from the rest).
		g = &guardedPacketConn{guardedConn: g.(*guardedConn), pc: pc}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = c.Close()
		return g
	}
	s.conns = append(s.conns, c)
	return g
}

// endWith ends the scope when ctx ends.
func (s *scope) endWith(ctx context.Context) {
	stop := context.AfterFunc(ctx, s.end)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unhook = stop
}

// end closes every connection of the probe.
func (s *scope) end() {
	s.mu.Lock()
	conns, unhook := s.conns, s.unhook
	s.conns, s.closed = nil, true
	s.mu.Unlock()
	// A scope that ends before its context unhooks itself: the context
	// is cancelled right after every probe, and the hook would start a
	// goroutine then (waking an idle thread) to find nothing to close.
	if unhook != nil {
		unhook()
	}
	for _, c := range conns {
		_ = c.Close()
	}
}

// tooLarge records the first limit a peer ran into and returns it.
func (s *scope) tooLarge(format string, args ...any) error {
	err := fmt.Errorf("%w: "+format, append([]any{ErrResponseTooLarge}, args...)...)
	if s.over.CompareAndSwap(nil, &err) {
		s.abort(err)
	}
	return err
}

// overLimit is the first limit a peer ran into, if any.
func (s *scope) overLimit() error {
	if e := s.over.Load(); e != nil {
		return *e
	}
	return nil
}

// guardedConn is a peer connection under the probe's budget.
type guardedConn struct {
	net.Conn
	s *scope
}

func (g *guardedConn) Read(p []byte) (int, error) {
	p, err := g.s.take(p)
	if err != nil {
		return 0, err
	}
	n, err := g.Conn.Read(p)
	g.s.read.Add(int64(n))
	return n, err
}

// take shortens p to what is left of the budget, or fails once none is.
func (s *scope) take(p []byte) ([]byte, error) {
	left := s.limit - s.read.Load()
	if left <= 0 {
		return nil, s.tooLarge("more than %s (max_response_bytes)", byteSize(s.limit))
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	return p, nil
}

// guardedPacketConn is a guarded datagram connection.
type guardedPacketConn struct {
	*guardedConn
	pc net.PacketConn
}

func (g *guardedPacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	p, err := g.s.take(p)
	if err != nil {
		return 0, nil, err
	}
	n, addr, err := g.pc.ReadFrom(p)
	g.s.read.Add(int64(n))
	return n, addr, err
}

func (g *guardedPacketConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	return g.pc.WriteTo(p, addr)
}

// byteSize prints a limit the way an operator wrote it.
func byteSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// dialTLS is dial with a TLS handshake on top when tc is set (the server
// name defaults to addr's host). Libraries whose framing is checked
// (framing.go) dial TLS here, so that the check sees their frames and
// not TLS records. An address the credential gate does not cover may
// still be reached when tc verifies certificates: see dialVerifiedName.
func (s *scope) dialTLS(ctx context.Context, network, addr string, tc *tls.Config) (net.Conn, error) {
	if s.gate != nil {
		if refused := s.gate(addr); refused != nil {
			if tc != nil && !tc.InsecureSkipVerify && len(s.names) > 0 {
				return s.dialVerifiedName(ctx, network, addr, tc, refused)
			}
			return nil, s.withhold(refused)
		}
	}
	c, err := s.dialUngated(ctx, network, addr)
	if err != nil || tc == nil {
		return c, err
	}
	cfg := tc.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName, _, _ = net.SplitHostPort(addr)
	}
	tconn := tls.Client(c, cfg)
	if err := tconn.HandshakeContext(ctx); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
	}
	return tconn, nil
}

// dial is a dial function for client libraries: it dials addr and guards
// the connection under the probe's scope.
func (s *scope) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if s.gate != nil {
		if err := s.gate(addr); err != nil {
			return nil, s.withhold(err)
		}
	}
	return s.dialUngated(ctx, network, addr)
}

// withhold records a refusal like a limit: libraries wrap or drop their
// dial errors, and the operator needs this one.
func (s *scope) withhold(err error) error {
	if s.over.CompareAndSwap(nil, &err) {
		s.abort(err)
	}
	return err
}

// dialVerifiedName reaches an address the topology does not name for the
// store (refused says so) only if the peer there proves, by a
// certificate that verifies against tc's roots, to be one of the host
// names the topology does give the store. The handshake comes first, so
// the credentials the library sends afterwards go to that name or
// nowhere.
func (s *scope) dialVerifiedName(ctx context.Context, network, addr string, tc *tls.Config, refused error) (net.Conn, error) {
	c, err := s.dialUngated(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	cfg := tc.Clone()
	cfg.ServerName = s.names[0]
	// Verified below, against every documented name rather than one.
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		return verifiedAs(cs, tc.RootCAs, s.names)
	}
	tconn := tls.Client(c, cfg)
	if err := tconn.HandshakeContext(ctx); err != nil {
		_ = c.Close()
		return nil, s.withhold(fmt.Errorf("%w, and its certificate does not prove it is %s: %w", refused, strings.Join(s.names, " or "), err))
	}
	return tconn, nil
}

// verifiedAs checks a peer's chain against roots (the system's when nil)
// and that its leaf is valid for one of names.
func verifiedAs(cs tls.ConnectionState, roots *x509.CertPool, names []string) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	leaf := cs.PeerCertificates[0]
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter}); err != nil {
		return err
	}
	for _, n := range names {
		if leaf.VerifyHostname(n) == nil {
			return nil
		}
	}
	return fmt.Errorf("its certificate is valid for %s only", hop.Clean(strings.Join(append(leaf.DNSNames, leaf.Subject.CommonName), ", "), 128))
}

// dialUngated dials addr and guards the connection.
func (s *scope) dialUngated(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: localAddr(network, addr)}
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return s.guard(c), nil
}

// credentialGate is the dial gate of a store with credentials: they go
// only to the addresses the topology names for it (address, addresses
// and allow). A sentinel that names another master, a Redis Cluster
// that redirects to another node, brokers or members advertised
// elsewhere would otherwise receive the password. A store without
// credentials has no gate: nothing of value goes out.
func credentialGate(st *config.Store) func(addr string) error {
	if st == nil || (len(config.StoreSecrets(st)) == 0 && (st.TLS == nil || st.TLS.CertFile == "")) {
		return nil
	}
	exact := map[string]bool{}
	var prefixes []netip.Prefix
	for _, a := range append(append([]string{st.Address}, st.Addresses...), st.Allow...) {
		if p, err := netip.ParsePrefix(a); err == nil {
			prefixes = append(prefixes, p.Masked())
		} else if a != "" {
			exact[strings.ToLower(a)] = true
		}
	}
	return func(addr string) error {
		if host, port, err := net.SplitHostPort(addr); err == nil && host == "" {
			// ":6379" dials this machine (a Redis Cluster node that does
			// not know its own IP announces it so).
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		if exact[strings.ToLower(addr)] {
			return nil
		}
		if ap, err := netip.ParseAddrPort(addr); err == nil {
			for _, p := range prefixes {
				if p.Contains(ap.Addr().Unmap()) {
					return nil
				}
			}
		}
		return fmt.Errorf("%w: its peers sent the probe to %s, which the topology does not name for it (list it under the store's allow: host:port or an IP prefix; with TLS verified, a host name its certificate is for)", ErrCredentialsWithheld, hop.Clean(addr, 128))
	}
}

// documentedNames are the host names (not IPs) in a store's address,
// addresses and allow list, in that order.
func documentedNames(st *config.Store) []string {
	if st == nil {
		return nil
	}
	var out []string
	for _, a := range append(append([]string{st.Address}, st.Addresses...), st.Allow...) {
		host := a
		if h, _, err := net.SplitHostPort(a); err == nil {
			host = h
		}
		if _, err := netip.ParsePrefix(a); err == nil || host == "" || net.ParseIP(host) != nil || slices.Contains(out, host) {
			continue
		}
		out = append(out, strings.ToLower(host))
	}
	return out
}

// ErrCredentialsWithheld is the reason of a store hop whose peer named
// an address its credentials may not go to.
var ErrCredentialsWithheld = errors.New("credentials withheld")
