// Package demo runs the demo topology on loopback: stand-ins for DNS,
// CloudFront, the ALBs, APISIX and the services, built from the same
// topology file the prober reads. Proxies route by Host and path and add
// their own Via and Server headers, so a probe can tell which layer
// answered.
package demo

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/miekg/dns"
	"github.com/quic-go/quic-go/http3"

	"github.com/allinx/hopprobe/chain"
	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/internal/peers"
	"github.com/allinx/hopprobe/targets"
)

// Edge modes: the way the demo's CloudFront sends requests on.
const (
	// EdgeDocumented: each route's first documented entry (ALB → APISIX).
	EdgeDocumented = "documented"
	// EdgeBypass: straight to the Service, past the ALB and APISIX.
	EdgeBypass = "bypass"
	// EdgeNLB: through the NLB where a route documents one.
	EdgeNLB = "nlb"
)

// Demo is a running set of stand-ins.
type Demo struct {
	edge     atomic.Value // string: EdgeDocumented, EdgeBypass or EdgeNLB
	broken   atomic.Value // string: the HTTP version the edges do not speak, "", "h2" or "h3"
	mu       sync.Mutex
	stoppers map[string]func() error
	order    []string
	restarts map[string]func() error // data stores: start again, same address and secret
}

// Start brings up every stand-in the topology names on loopback. Only
// loopback addresses are served; anything else is an error, so a
// production topology can never be impersonated by mistake.
func Start(cfg *config.Config) (*Demo, error) {
	d := &Demo{stoppers: map[string]func() error{}, restarts: map[string]func() error{}}
	d.edge.Store(EdgeDocumented)
	d.broken.Store("")
	if err := d.start(cfg); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// SetEdge switches the way the demo's CloudFront sends requests on:
// EdgeDocumented, EdgeBypass or EdgeNLB.
func (d *Demo) SetEdge(mode string) error {
	switch mode {
	case EdgeDocumented, EdgeBypass, EdgeNLB:
		d.edge.Store(mode)
		return nil
	}
	return fmt.Errorf("edge mode %q: want %s, %s or %s", mode, EdgeDocumented, EdgeBypass, EdgeNLB)
}

// Break makes the demo's HTTPS edges stop speaking one HTTP version:
// "h2" (ALPN offers only http/1.1), "h3" (every UDP datagram to them is
// dropped, as a UDP/443 block does) or "" (all of them again).
func (d *Demo) Break(proto string) error {
	switch proto {
	case "", "none":
		d.broken.Store("")
	case "h2", "h3":
		d.broken.Store(proto)
	default:
		return fmt.Errorf("protocol %q: want h2, h3 or none", proto)
	}
	return nil
}

// serveH3 serves h over HTTP/3 (quic-go) on addr's UDP port.
func (d *Demo) serveH3(name, addr string, h http.Handler, base *tls.Config) error {
	udp, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("demo: %s cannot listen on UDP %s: %w", name, addr, err)
	}
	srv := &http3.Server{Handler: h, TLSConfig: http3.ConfigureTLSConfig(base.Clone())}
	go func() { _ = srv.Serve(blockable{udp, d}) }()
	d.add(name+"-h3", func() error { err := srv.Close(); udp.Close(); return err })
	return nil
}

// blockable drops every datagram while HTTP/3 is broken.
type blockable struct {
	net.PacketConn
	d *Demo
}

func (b blockable) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, from, err := b.PacketConn.ReadFrom(p)
		if err != nil || b.d.broken.Load().(string) != "h3" {
			return n, from, err
		}
	}
}

func (blockable) SetReadBuffer(int) error  { return nil }
func (blockable) SetWriteBuffer(int) error { return nil }

// Edge is the current edge mode.
func (d *Demo) Edge() string { return d.edge.Load().(string) }

func (d *Demo) add(name string, stop func() error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stoppers[name] = stop
	if !slices.Contains(d.order, name) {
		d.order = append(d.order, name)
	}
}

// Names lists the stand-ins that can be stopped.
func (d *Demo) Names() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.order...)
}

// Stop shuts one stand-in down, so that its port refuses connections.
func (d *Demo) Stop(name string) error {
	d.mu.Lock()
	stop, ok := d.stoppers[name]
	delete(d.stoppers, name)
	d.mu.Unlock()
	if !ok {
		return fmt.Errorf("no running stand-in %q", name)
	}
	return stop()
}

// Restart starts a stopped data store again, on its address and with its
// secret, as an operator brings one back.
func (d *Demo) Restart(name string) error {
	d.mu.Lock()
	restart, stopped := d.restarts[name], d.stoppers[name] == nil
	d.mu.Unlock()
	if restart == nil || !stopped {
		return fmt.Errorf("no stopped data store %q", name)
	}
	return restart()
}

// Close stops every stand-in.
func (d *Demo) Close() {
	for _, n := range d.Names() {
		_ = d.Stop(n)
	}
}

func loopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("demo stand-ins only listen on loopback, not %s", addr)
	}
	return nil
}

func (d *Demo) start(cfg *config.Config) error {
	if err := d.startDNS(cfg); err != nil {
		return err
	}

	hosts := routeHosts(cfg)
	dir, err := os.MkdirTemp("", "hopprobe-demo-pki-")
	if err != nil {
		return err
	}
	// The server key stays in memory; only the CA is copied out.
	defer os.RemoveAll(dir)
	cert, err := peers.NewPKI(dir, hosts, "hopprobe")
	if err != nil {
		return fmt.Errorf("demo: cannot make the edge certificate: %w", err)
	}
	// One stand-in per distinct address. A layer forwards to the next
	// hop of the entry the request's route takes through it; the last
	// layer of an entry routes like APISIX. Each answers with the marks
	// its real counterpart leaves (chain.Builtin): CloudFront its Via and
	// X-Amz-Cf-*, APISIX its Server header, an ALB nothing unless it
	// answers itself.
	type role struct {
		name, scheme, kind string
		tls                *config.TLS
		next               map[string]string // entry → next address
		last               map[string]bool   // entries whose last layer this is
	}
	roles := map[string]*role{}
	var addrs []string
	for _, e := range cfg.Entries {
		for i, h := range e.Hops {
			addr := hopAddr(h)
			if addr == "" || strings.Contains(addr, "{host}") {
				continue
			}
			r, ok := roles[addr]
			if !ok {
				r = &role{name: h.Name, scheme: h.Scheme, kind: h.ChainComponent().Kind, tls: h.TLS, next: map[string]string{}, last: map[string]bool{}}
				roles[addr] = r
				addrs = append(addrs, addr)
			}
			if i+1 < len(e.Hops) {
				r.next[e.Name] = hopAddr(e.Hops[i+1])
			} else {
				r.last[e.Name] = true
			}
		}
	}
	nlbEntries := map[string]bool{}
	for _, e := range cfg.Entries {
		for _, h := range e.Hops {
			if h.ChainComponent().Kind == chain.NLB {
				nlbEntries[e.Name] = true
			}
		}
	}
	for _, addr := range addrs {
		r := roles[addr]
		if r.scheme == "https" {
			if r.tls == nil || r.tls.CAFile == "" {
				return fmt.Errorf("demo: https hop %s needs tls.ca_file so the prober can trust the demo CA", r.name)
			}
			if err := copyFile(cert.CA, r.tls.CAFile); err != nil {
				return err
			}
		}
		next := func(req *http.Request) (string, bool) {
			rt := matchRoute(cfg, req)
			if rt == nil {
				return "", false
			}
			if r.kind == chain.CloudFront && d.Edge() == EdgeBypass {
				return serviceAddr(cfg, rt)
			}
			// The route's entries through this layer, in the route's order;
			// under the nlb switch CloudFront prefers the NLB's.
			var ways []string
			for _, e := range rt.Entries {
				if _, ok := r.next[e]; ok || r.last[e] {
					ways = append(ways, e)
				}
			}
			if len(ways) == 0 {
				return "", false
			}
			way := ways[0]
			if r.kind == chain.CloudFront && d.Edge() == EdgeNLB {
				for _, e := range ways {
					if nlbEntries[e] {
						way = e
					}
				}
			}
			if r.last[way] {
				return serviceAddr(cfg, rt)
			}
			return r.next[way], true
		}
		if err := d.serveHTTP(r.name, addr, proxy(r.name, r.kind, next), r.scheme == "https", cert); err != nil {
			return err
		}
	}
	for i := range cfg.Services {
		s := &cfg.Services[i]
		for _, p := range s.Ports {
			if p.Address == "" {
				continue
			}
			name := s.Name
			if len(s.Ports) > 1 {
				name = fmt.Sprintf("%s:%d", s.Name, p.Port)
			}
			var err error
			if p.Protocol == "tcp" {
				err = d.serveTCP(name, p.Address)
			} else {
				err = d.serveHTTP(name, p.Address, Service(s.Name), false, cert)
			}
			if err != nil {
				return err
			}
		}
	}
	// Last, so that the ports the stores pick for themselves (etcd's peer
	// port) cannot collide with the topology's own addresses.
	return d.startStores(cfg)
}

func routeHosts(cfg *config.Config) []string {
	set := map[string]bool{}
	for _, r := range cfg.Routes {
		for _, h := range r.Hosts {
			set[h] = true
		}
		if r.Probe.Host != "" {
			set[r.Probe.Host] = true
		}
	}
	out := make([]string, 0, len(set))
	for h := range set {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}

func (d *Demo) serveHTTP(name, addr string, h http.Handler, useTLS bool, c *peers.PKI) error {
	if err := loopback(addr); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("demo: %s cannot listen on %s: %w", name, addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second,
		ErrorLog: slog.NewLogLogger(slog.Default().Handler(), slog.LevelDebug)}
	if useTLS {
		// Every answer announces HTTP/3 on the same port, as CloudFront
		// does where it is enabled.
		_, port, _ := net.SplitHostPort(addr)
		inner := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Alt-Svc", `h3=":`+port+`"; ma=86400`)
			inner.ServeHTTP(w, r)
		})
		srv.Handler = h
		// HTTP/1.1 and HTTP/2 on TCP, as an edge serves them; HTTP/2 is
		// offered by ALPN unless it is broken (Break).
		base, _ := c.ServerTLS(false)
		srv.TLSConfig = base.Clone()
		srv.TLSConfig.NextProtos = []string{"h2", "http/1.1"}
		srv.TLSConfig.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
			tc := srv.TLSConfig.Clone()
			tc.GetConfigForClient = nil
			if d.broken.Load().(string) == "h2" {
				tc.NextProtos = []string{"http/1.1"}
			}
			return tc, nil
		}
		go func() { _ = srv.ServeTLS(ln, "", "") }()
		if err := d.serveH3(name, addr, h, base); err != nil {
			srv.Close()
			return err
		}
	} else {
		go func() { _ = srv.Serve(ln) }()
	}
	d.add(name, srv.Close)
	return nil
}

// serveTCP accepts connections and closes them: a stand-in for the
// non-HTTP CES/Narwhal ports.
func (d *Demo) serveTCP(name, addr string) error {
	if err := loopback(addr); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("demo: %s cannot listen on %s: %w", name, addr, err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	d.add(name, ln.Close)
	return nil
}

func (d *Demo) startDNS(cfg *config.Config) error {
	answers := map[string]bool{}
	for _, h := range routeHosts(cfg) {
		answers[dns.Fqdn(strings.ToLower(h))] = true
	}
	seen := map[string]bool{}
	for _, vn := range cfg.VantageNames() {
		addr := cfg.Vantages[vn].Resolver
		if addr == "" || seen[addr] {
			continue
		}
		seen[addr] = true
		if err := loopback(addr); err != nil {
			return err
		}
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return fmt.Errorf("demo: dns cannot listen on %s: %w", addr, err)
		}
		srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
			m := new(dns.Msg)
			m.SetReply(q)
			name := strings.ToLower(q.Question[0].Name)
			known := answers[name]
			for h := range answers {
				if strings.HasPrefix(h, "*.") && strings.HasSuffix(name, h[1:]) {
					known = true
				}
			}
			switch {
			case !known:
				m.Rcode = dns.RcodeNameError
			case q.Question[0].Qtype == dns.TypeA:
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 30}, A: net.IPv4(127, 0, 0, 1)})
			}
			_ = w.WriteMsg(m)
		})}
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() { _ = srv.ActivateAndServe() }()
		<-started
		name := "dns"
		if len(seen) > 1 {
			name = "dns-" + addr
		}
		d.add(name, srv.Shutdown)
	}
	return nil
}

// proxy forwards to the address next picks and answers itself (a 502,
// or APISIX's 404) when it cannot, leaving the marks of its kind.
func proxy(name, kind string, next func(*http.Request) (string, bool)) http.Handler {
	mark := func(h http.Header) {
		switch kind {
		case chain.CloudFront:
			h.Set("Via", "1.1 d3demo.cloudfront.net (CloudFront)")
			h.Set("X-Amz-Cf-Pop", "SIN2-P1")
			h.Set("X-Amz-Cf-Id", demoCfID())
			h.Set("X-Cache", "Miss from cloudfront")
		case chain.APISIX:
			h.Set("Server", "APISIX/3.9.0")
		case chain.ALB, chain.NLB:
			// Transparent on the way back.
		default:
			h.Add("Via", "1.1 "+name)
		}
	}
	// What the layer says when it answers itself.
	own := func(w http.ResponseWriter) {
		mark(w.Header())
		switch kind {
		case chain.ALB:
			w.Header().Set("Server", "awselb/2.0")
		case chain.CloudFront:
			w.Header().Set("Server", "CloudFront")
		case chain.APISIX:
		default:
			w.Header().Set("Server", name)
		}
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			addr, _ := next(pr.In)
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = addr
			pr.Out.Host = pr.In.Host
			if kind != chain.ALB && kind != chain.NLB {
				pr.Out.Header.Add("Via", "1.1 "+name)
			}
		},
		ModifyResponse: func(r *http.Response) error {
			mark(r.Header)
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			own(w)
			http.Error(w, fmt.Sprintf("%s: upstream unavailable: %v", name, err), http.StatusBadGateway)
		},
		Transport: &http.Transport{DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext, ResponseHeaderTimeout: 5 * time.Second},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := next(r); !ok {
			own(w)
			http.Error(w, `{"error_msg":"404 Route Not Found"}`, http.StatusNotFound)
			return
		}
		rp.ServeHTTP(w, r)
	})
}

// demoCfID is a request id shaped like CloudFront's.
func demoCfID() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

func hopAddr(h config.EntryHop) string {
	if a := h.Addresses[config.VantageCluster]; a != "" {
		return a
	}
	return h.Address
}

// matchRoute finds the route a request is for, the way APISIX would.
func matchRoute(cfg *config.Config, r *http.Request) *config.Route {
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	rt, _ := targets.MatchRoute(cfg, strings.ToLower(host), r.URL.Path)
	return rt
}

func serviceAddr(cfg *config.Config, rt *config.Route) (string, bool) {
	svc := cfg.FindService(rt.Target.Key())
	if svc == nil {
		return "", false
	}
	return targets.ServiceAddr(svc, rt.Target.Port), true
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

// Service is the stand-in for the service name (and, in the end-to-end
// suite, for each of its pods): it answers HTTP with a small JSON
// document and WebSocket messages containing "ping" with a pong.
func Service(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", name)
		if websocket.IsWebSocketUpgrade(r) {
			c, err := upgrader.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer c.Close()
			for {
				_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
				mt, msg, err := c.ReadMessage()
				if err != nil {
					return
				}
				reply := msg
				if strings.Contains(string(msg), "ping") {
					reply = []byte(`{"op":"pong","service":"` + name + `"}`)
				}
				if err := c.WriteMessage(mt, reply); err != nil {
					return
				}
			}
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"status":"ok","service":%q,"path":%q}`+"\n", name, r.URL.Path)
	})
}

// copyFile puts the demo CA where the topology's tls.ca_file expects it.
func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("demo: cannot create %s: %w", filepath.Dir(dst), err)
	}
	return os.WriteFile(dst, b, 0o644)
}
