package config

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/allinx/hopprobe/chain"
	"github.com/allinx/hopprobe/internal/similar"
)

// validator collects every problem with the line it sits on.
type validator struct {
	cfg  *Config
	file string
	root *yaml.Node
	errs Errors
	// problems fail only the store they are about (Config.Problems).
	problems Errors
}

// errorf records a problem at the YAML node addressed by path: mapping
// keys as strings, sequence positions as ints. When the exact node is
// missing (a required key left out) the nearest parent's line is used.
func (v *validator) errorf(path []any, format string, args ...any) {
	v.errs = append(v.errs, &Error{File: v.file, Line: v.line(path), Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) line(path []any) int {
	n := v.root
	line := n.Line
	for _, p := range path {
		var next *yaml.Node
		switch k := p.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == k {
						next = n.Content[i+1]
						line = n.Content[i].Line
						break
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && k < len(n.Content) {
				next = n.Content[k]
				line = next.Line
			}
		}
		if next == nil {
			return line
		}
		n = next
		if n.Kind == yaml.SequenceNode || n.Kind == yaml.MappingNode {
			// keep the key's line, which is where an operator looks
			continue
		}
		line = n.Line
	}
	return line
}

// loc addresses a YAML node: mapping keys as strings, sequence
// positions as ints.
func loc(parts ...any) []any { return parts }

var (
	nameRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$`)
	hostRe = regexp.MustCompile(`^(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$`)
)

var serviceTypes = []string{"ClusterIP", "NodePort", "LoadBalancer", "None"}

func oneOf(s string, set []string) bool {
	for _, x := range set {
		if s == x {
			return true
		}
	}
	return false
}

func (v *validator) validate() {
	c := v.cfg
	if c.Vantage != "" {
		if _, ok := c.Vantages[c.Vantage]; !ok {
			v.errorf(loc("vantage"), "vantage %q is not defined under vantages (have %s)", c.Vantage, strings.Join(c.VantageNames(), ", "))
		}
	}
	for name, vt := range c.Vantages {
		if vt.Resolver != "" {
			v.checkHostPort(loc("vantages", name, "resolver"), vt.Resolver, "resolver")
		}
	}
	v.checkDurations(loc("defaults"), c.Defaults.Interval, c.Defaults.Timeout)
	if c.Defaults.Concurrency < 0 {
		v.errorf(loc("defaults", "concurrency"), "concurrency must be positive, got %d", c.Defaults.Concurrency)
	}
	if c.Defaults.MaxBodyBytes < 0 {
		v.errorf(loc("defaults", "max_body_bytes"), "max_body_bytes must be positive, got %d", c.Defaults.MaxBodyBytes)
	}
	v.checkBudget(loc("defaults", "max_response_bytes"), c.Defaults.MaxResponseBytes)
	if c.Defaults.History < 0 || c.Defaults.History > MaxHistory {
		v.errorf(loc("defaults", "history"), "history must be between 1 and %d walks, got %d", MaxHistory, c.Defaults.History)
	}
	if r := c.Defaults.Confirm.Retries; r != nil && (*r < 0 || *r > MaxConfirmRetries) {
		v.errorf(loc("defaults", "confirm", "retries"), "confirm.retries must be between 0 (no confirmation) and %d, got %d", MaxConfirmRetries, *r)
	}
	if sp := c.Defaults.Confirm.Spacing; sp < 0 || sp > MaxConfirmSpacing {
		v.errorf(loc("defaults", "confirm", "spacing"), "confirm.spacing must be between 0 and %s, got %s", MaxConfirmSpacing, sp)
	}
	if b := c.Defaults.BrokenInterval; b != nil && *b != 0 {
		iv := c.Defaults.Interval
		if iv == 0 {
			iv = DefaultInterval
		}
		if *b < MinBrokenInterval || *b > iv {
			v.errorf(loc("defaults", "broken_interval"), "broken_interval must be 0 (walk broken paths at their interval) or between %s and the interval %s, got %s", MinBrokenInterval, iv, *b)
		}
	}
	v.validateEntries()
	v.validateStores()
	v.validateServices()
	v.validateRoutes()
	v.validateNodes()
	v.validateMetrics()
}

func (v *validator) checkDurations(at []any, interval, timeout time.Duration) {
	if interval < 0 {
		v.errorf(append(at, "interval"), "interval must be positive, got %s", interval)
	}
	if timeout < 0 {
		v.errorf(append(at, "timeout"), "timeout must be positive, got %s", timeout)
	}
	if interval > 0 && timeout > interval {
		v.errorf(append(at, "timeout"), "timeout %s is longer than interval %s; probes would overlap", timeout, interval)
	}
}

func (v *validator) checkVantages(at []any, from []string) {
	for i, f := range from {
		if _, ok := v.cfg.Vantages[f]; !ok {
			v.errorf(append(at, i), "vantage %q is not defined under vantages (have %s)", f, strings.Join(v.cfg.VantageNames(), ", "))
		}
	}
}

// minResponseBytes is the smallest byte budget that still fits a TLS
// handshake with a certificate chain.
const minResponseBytes = 16 << 10

func (v *validator) checkBudget(at []any, n int64) {
	if n < 0 || (n > 0 && n < minResponseBytes) {
		v.errorf(at, "max_response_bytes must be at least %d (a TLS handshake needs that much), got %d", minResponseBytes, n)
	}
}

func (v *validator) checkHostPort(at []any, addr, what string) {
	if strings.Contains(addr, "@") {
		// The part before @ is user information, often with a password:
		// never echo it into an error or a reload log.
		v.errorf(at, "%s contains user information (user:password@); write host:port here and the credentials under username and password: {env: …}", what)
		return
	}
	addr = strings.ReplaceAll(addr, "{host}", "host")
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		v.errorf(at, "%s %q must be host:port", what, addr)
		return
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		v.errorf(at, "%s %q: port %q is out of range 1-65535", what, addr, port)
	}
}

func (v *validator) checkTLS(at []any, t *TLS) {
	if t == nil {
		return
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		v.errorf(at, "tls needs both cert_file and key_file for a client certificate, or neither")
	}
}

// checkName wants a lower-case name, unique among seen.
func (v *validator) checkName(at []any, what, name string, seen map[string]bool) {
	if !nameRe.MatchString(name) {
		v.errorf(append(at, "name"), "%s name %q must be lower-case letters, digits, '.' or '-'", what, name)
	}
	if seen[name] {
		v.errorf(append(at, "name"), "duplicate %s name %q", what, name)
	}
	seen[name] = true
}

func (v *validator) validateEntries() {
	seen := map[string]bool{}
	for i, e := range v.cfg.Entries {
		at := loc("entries", i)
		v.checkName(at, "entry", e.Name, seen)
		if len(e.Hops) == 0 {
			v.errorf(at, "entry %q has no hops", e.Name)
		}
		v.checkFamily(append(at, "family"), e.Family)
		hopSeen := map[string]bool{}
		for j, h := range e.Hops {
			hopAt := append(loc(), "entries", i, "hops", j)
			if !nameRe.MatchString(h.Name) {
				v.errorf(append(hopAt, "name"), "hop name %q must be lower-case letters, digits, '.' or '-'", h.Name)
			}
			if hopSeen[h.Name] {
				v.errorf(append(hopAt, "name"), "duplicate hop name %q in entry %q", h.Name, e.Name)
			}
			hopSeen[h.Name] = true
			if h.Address != "" {
				v.checkHostPort(append(hopAt, "address"), h.Address, "address")
			}
			for vn, a := range h.Addresses {
				if _, ok := v.cfg.Vantages[vn]; !ok {
					v.errorf(append(hopAt, "addresses", vn), "vantage %q is not defined under vantages", vn)
				}
				v.checkHostPort(append(hopAt, "addresses", vn), a, "address")
			}
			v.checkVantages(append(hopAt, "from"), h.From)
			if h.Scheme != "" && h.Scheme != "http" && h.Scheme != "https" {
				v.errorf(append(hopAt, "scheme"), "scheme %q must be http or https", h.Scheme)
			}
			v.checkTLS(append(hopAt, "tls"), h.TLS)
			v.checkComponent(hopAt, h)
			v.checkProtocols(append(hopAt, "protocols"), h.Protocols, h.Scheme == "https")
			v.checkFamily(append(hopAt, "family"), h.Family)
			if h.AltSvc != "" && !oneOf(h.AltSvc, HTTPProtocols) {
				v.errorf(append(hopAt, "alt_svc"), "alt_svc %q must be one of %s", h.AltSvc, strings.Join(HTTPProtocols, ", "))
			}
		}
	}
}

// checkFamily checks an address family setting.
func (v *validator) checkFamily(at []any, family string) {
	if family != "" && family != "ipv4" && family != "ipv6" {
		v.errorf(at, "family %q must be ipv4 or ipv6", family)
	}
}

// checkProtocols checks a list of required HTTP versions: known, once
// each, and over TLS (h2 is negotiated by ALPN, and h3 is QUIC, which is
// TLS; a cleartext hop speaks only http/1.1 here).
func (v *validator) checkProtocols(at []any, protos []string, https bool) {
	seen := map[string]bool{}
	for j, p := range protos {
		switch {
		case !oneOf(p, HTTPProtocols):
			v.errorf(append(at, j), "protocol %q must be one of %s", p, strings.Join(HTTPProtocols, ", "))
		case seen[p]:
			v.errorf(append(at, j), "protocol %q is listed twice", p)
		case p != "http/1.1" && !https:
			v.errorf(append(at, j), "protocol %s needs TLS: only a hop with scheme https can be asked for it", p)
		}
		seen[p] = true
	}
}

// maxFingerprints bounds the marks an entry hop may list.
const maxFingerprints = 8

// credentialHeaders may carry a session or a secret.
var credentialHeaders = map[string]bool{"set-cookie": true, "cookie": true, "authorization": true, "proxy-authorization": true,
	"www-authenticate": true, "proxy-authenticate": true, "x-api-key": true, "x-amz-security-token": true}

var headerNameRe = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+.^_|~-]+$`)

func (v *validator) checkComponent(at []any, h EntryHop) {
	switch h.Component {
	case "", chain.CloudFront, chain.ALB, chain.NLB, chain.APISIX, chain.Nginx:
	default:
		if len(h.Fingerprints) == 0 {
			v.errorf(append(at, "component"), "component %q has no built-in fingerprints; use one of cloudfront, alb, nlb, apisix, nginx, or give fingerprints", h.Component)
		}
	}
	if len(h.Fingerprints) > maxFingerprints {
		v.errorf(append(at, "fingerprints"), "at most %d fingerprints per hop, not %d", maxFingerprints, len(h.Fingerprints))
	}
	for k, f := range h.Fingerprints {
		switch {
		case !headerNameRe.MatchString(f.Header):
			v.errorf(append(at, "fingerprints", k, "header"), "fingerprint header %q is not an HTTP header name", f.Header)
		case credentialHeaders[strings.ToLower(f.Header)]:
			// The header a fingerprint reads is kept as evidence, served
			// by /api/v1/paths and exported in traces.
			v.errorf(append(at, "fingerprints", k, "header"), "fingerprint header %q can carry credentials, which would be kept as evidence; pick a header that identifies the component", f.Header)
		}
	}
}

func (v *validator) validateStores() {
	seen := map[string]bool{}
	for i := range v.cfg.Stores {
		s := &v.cfg.Stores[i]
		at := loc("stores", i)
		v.checkName(at, "store", s.Name, seen)
		if _, known := storeKinds[s.Kind]; !known {
			v.errorf(append(at, "kind"), "store %q has kind %q; want one of %s", s.Name, s.Kind, strings.Join(storeKindOrder, ", "))
		}
		if s.Address == "" && len(s.Addresses) == 0 {
			v.errorf(at, "store %q needs an address (host:port)", s.Name)
		}
		if s.Address != "" {
			v.checkHostPort(append(at, "address"), s.Address, "address")
		}
		for j, a := range s.Addresses {
			v.checkHostPort(append(at, "addresses", j), a, "address")
		}
		for j, a := range s.Allow {
			if _, err := netip.ParsePrefix(a); err != nil {
				v.checkHostPort(append(at, "allow", j), a, "allowed address (host:port, or an IP prefix such as 10.20.0.0/16)")
			}
		}
		v.checkVantages(append(at, "from"), s.From)
		v.checkSecret(append(at, "password"), s.Password)
		v.checkTLS(append(at, "tls"), s.TLS)
		v.checkDurations(at, s.Interval, s.Timeout)
		v.checkBudget(append(at, "max_response_bytes"), s.MaxResponseBytes)
		v.validateStoreOpts(at, s)
	}
}

func (v *validator) validateStoreOpts(at []any, s *Store) {
	for _, name := range storeKindOrder {
		if storeKinds[name].HasBlock(s) && name != s.Kind {
			v.errorf(append(at, name), "store %q is of kind %s but has a %s block", s.Name, s.Kind, name)
		}
	}
	if k, ok := storeKinds[s.Kind]; ok && k.Check != nil && k.HasBlock(s) {
		k.Check(s, &Checker{v: v, at: at})
	}
}

func (v *validator) checkSecret(at []any, s *SecretRef) {
	if s == nil {
		return
	}
	if s.Inline {
		v.errorf(at, "secrets may not be written inline; use {env: VAR_NAME} or {file: /path/to/secret}")
		return
	}
	if (s.Env == "") == (s.File == "") {
		v.errorf(at, "a secret reference needs exactly one of env or file")
		return
	}
	// A secret that is not there yet (validate on a laptop) is checked
	// when a probe resolves it. One too short to scrub fails that
	// store's hops (the probe refuses it too), not the whole topology.
	if val, err := s.Resolve(); err == nil {
		if err := CheckSecret(val); err != nil {
			v.problems = append(v.problems, &Error{File: v.file, Line: v.line(at), Msg: fmt.Sprintf("the secret from %s: %v; the hops that use it fail until it is replaced", s, err)})
		}
	}
}

// CheckSecret refuses a password too short to be scrubbed from messages.
// An empty one means no password.
func CheckSecret(val string) error {
	if n := len(val); n > 0 && n < MinSecretLength {
		return fmt.Errorf("it is %d characters long; hopprobe refuses passwords shorter than %d, which cannot be kept out of error messages reliably", n, MinSecretLength)
	}
	return nil
}

func (v *validator) validateServices() {
	seen := map[string]bool{}
	for i := range v.cfg.Services {
		s := &v.cfg.Services[i]
		at := loc("services", i)
		if !nameRe.MatchString(s.Name) {
			v.errorf(append(at, "name"), "service name %q must be lower-case letters, digits, '.' or '-'", s.Name)
		}
		if !nameRe.MatchString(s.Namespace) {
			v.errorf(append(at, "namespace"), "service %q needs a namespace", s.Name)
		}
		if seen[s.Key()] {
			v.errorf(append(at, "name"), "duplicate service %s", s.Key())
		}
		seen[s.Key()] = true
		if !oneOf(s.Type, serviceTypes) {
			v.errorf(append(at, "type"), "service %s has type %q; want one of %s", s.Key(), s.Type, strings.Join(serviceTypes, ", "))
		}
		if s.Type == "None" && len(s.Ports) > 0 {
			v.errorf(append(at, "ports"), "service %s has type None (no Service object) but lists ports", s.Key())
		}
		portSeen := map[int]bool{}
		for j, pt := range s.Ports {
			portAt := append(loc(), "services", i, "ports", j)
			if pt.Port < 1 || pt.Port > 65535 {
				v.errorf(append(portAt, "port"), "port %d of %s is out of range 1-65535", pt.Port, s.Key())
			}
			if portSeen[pt.Port] {
				v.errorf(append(portAt, "port"), "port %d of %s is listed twice", pt.Port, s.Key())
			}
			portSeen[pt.Port] = true
			if pt.NodePort != 0 {
				if s.Type != "NodePort" && s.Type != "LoadBalancer" {
					v.errorf(append(portAt, "node_port"), "service %s is %s; only NodePort and LoadBalancer services have node ports", s.Key(), s.Type)
				}
				if pt.NodePort < 30000 || pt.NodePort > 32767 {
					v.errorf(append(portAt, "node_port"), "node port %d of %s is outside the Kubernetes range 30000-32767", pt.NodePort, s.Key())
				}
			}
			if pt.Protocol != "" && !oneOf(pt.Protocol, portProtocols) {
				v.errorf(append(portAt, "protocol"), "protocol %q of %s must be one of %s", pt.Protocol, s.Key(), strings.Join(portProtocols, ", "))
			}
			if pt.Address != "" {
				v.checkHostPort(append(portAt, "address"), pt.Address, "address")
			}
		}
		for j, d := range s.DependsOn {
			if v.cfg.FindStore(d) == nil {
				v.errorf(append(at, "depends_on", j), "service %s depends on store %q, which is not defined under stores%s", s.Key(), d, didYouMean(d, v.storeNames()))
			}
		}
		for j, c := range s.Calls {
			if v.cfg.FindService(c) == nil {
				v.errorf(append(at, "calls", j), "service %s calls %q, which is not defined under services (write namespace/name)%s", s.Key(), c, didYouMean(c, v.serviceKeys()))
			}
		}
		if s.Selects != "" && v.cfg.FindService(s.Selects) == nil {
			v.errorf(append(at, "selects"), "service %s selects %q, which is not defined under services", s.Key(), s.Selects)
		}
		v.checkVantages(append(at, "nodeport_unreachable_from"), s.NodePortUnreachableFrom)
	}
}

func (v *validator) validateRoutes() {
	type routeKey struct{ host, path, entry string }
	seen := map[routeKey]int{}
	for i := range v.cfg.Routes {
		r := &v.cfg.Routes[i]
		at := loc("routes", i)
		if len(r.Hosts) == 0 {
			v.errorf(at, "route needs at least one host")
		}
		for j, h := range r.Hosts {
			if !hostRe.MatchString(h) {
				v.errorf(append(at, "hosts", j), "host %q is not a host name (a leading '*.' is allowed)", h)
			}
		}
		if !strings.HasPrefix(r.Path, "/") || strings.Contains(strings.TrimSuffix(r.Path, "*"), "*") {
			v.errorf(append(at, "path"), "path %q must start with '/' and may only end in '*'", r.Path)
		}
		ref, ok := ParseServiceRef(r.Service)
		switch {
		case !ok:
			v.errorf(append(at, "service"), "service %q must be namespace/name:port", r.Service)
		case v.cfg.FindService(ref.Key()) == nil:
			v.errorf(append(at, "service"), "route %s%s goes to %s, which is not defined under services%s", first(r.Hosts), r.Path, ref.Key(), didYouMean(ref.Key(), v.serviceKeys()))
		default:
			s := v.cfg.FindService(ref.Key())
			found := false
			for _, pt := range s.Ports {
				found = found || pt.Port == ref.Port
			}
			if !found {
				v.errorf(append(at, "service"), "route %s%s goes to port %d, which service %s does not expose", first(r.Hosts), r.Path, ref.Port, ref.Key())
			}
		}
		if r.Protocol != "" && !oneOf(r.Protocol, routeProtocols) {
			v.errorf(append(at, "protocol"), "protocol %q must be one of %s", r.Protocol, strings.Join(routeProtocols, ", "))
		}
		for j, e := range r.Entries {
			if v.cfg.FindEntry(e) == nil {
				v.errorf(append(at, "entries", j), "entry %q is not defined under entries", e)
			}
		}
		for _, h := range r.Hosts {
			for _, e := range v.cfg.routeEntries(r) {
				k := routeKey{h, r.Path, e}
				if prev, dup := seen[k]; dup {
					v.errorf(append(at, "path"), "route %s%s via %s is already defined at line %d", h, r.Path, e, v.line(loc("routes", prev)))
				}
				seen[k] = i
			}
		}
		for j, name := range r.Probe.Chain {
			for _, e := range v.cfg.routeEntries(r) {
				if en := v.cfg.FindEntry(e); en != nil && !slices.ContainsFunc(en.Hops, func(h EntryHop) bool { return h.Name == name }) {
					v.errorf(append(at, "probe", "chain", j), "chain names %q, which is not a hop of entry %q", name, e)
				}
			}
		}
		if r.Probe.Path != "" && !strings.HasPrefix(r.Probe.Path, "/") {
			v.errorf(append(at, "probe", "path"), "probe path %q must start with '/'", r.Probe.Path)
		}
		if r.Probe.Host != "" && (!hostRe.MatchString(r.Probe.Host) || strings.HasPrefix(r.Probe.Host, "*")) {
			v.errorf(append(at, "probe", "host"), "probe host %q must be a concrete host name", r.Probe.Host)
		}
		v.checkDurations(append(at, "probe"), r.Probe.Interval, r.Probe.Timeout)
		for j, st := range r.Probe.Expect.Status {
			if st < 100 || st > 599 {
				v.errorf(append(at, "probe", "expect", "status", j), "status %d is not an HTTP status code", st)
			}
		}
		if r.Protocol != "websocket" && (r.Probe.Expect.Send != "" || r.Probe.Expect.Reply != "") {
			v.errorf(append(at, "probe", "expect"), "send/reply only apply to websocket routes")
		}
		if len(r.Probe.Protocols) > 0 {
			if r.Protocol == "websocket" {
				v.errorf(append(at, "probe", "protocols"), "protocols apply to http routes; a WebSocket probe upgrades an HTTP/1.1 connection")
			}
			for _, e := range v.cfg.routeEntries(r) {
				if en := v.cfg.FindEntry(e); en != nil && len(en.Hops) > 0 {
					v.checkProtocols(append(at, "probe", "protocols"), r.Probe.Protocols, en.Hops[0].Scheme == "https")
				}
			}
		}
	}
}

func (v *validator) validateNodes() {
	seen := map[string]bool{}
	for i, n := range v.cfg.Nodes {
		if n.Name == "" || seen[n.Name] {
			v.errorf(loc("nodes", i, "name"), "node needs a unique name, got %q", n.Name)
		}
		seen[n.Name] = true
		if net.ParseIP(n.Address) == nil && !hostRe.MatchString(n.Address) {
			v.errorf(loc("nodes", i, "address"), "node address %q must be an IP or host name (no port)", n.Address)
		}
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func (v *validator) storeNames() []string {
	out := make([]string, 0, len(v.cfg.Stores))
	for _, st := range v.cfg.Stores {
		out = append(out, st.Name)
	}
	return out
}

func (v *validator) serviceKeys() []string {
	out := make([]string, 0, len(v.cfg.Services))
	for i := range v.cfg.Services {
		out = append(out, v.cfg.Services[i].Key())
	}
	return out
}

// didYouMean names the known names within a third of name's length in
// edits (at least one edit), nearest first, as "; did you mean …?".
func didYouMean(name string, known []string) string {
	type cand struct {
		s string
		d int
	}
	var near []cand
	for _, k := range known {
		if d := similar.Edits(name, k); d <= max(1, len(name)/3) {
			near = append(near, cand{k, d})
		}
	}
	if len(near) == 0 {
		return ""
	}
	slices.SortStableFunc(near, func(a, b cand) int { return a.d - b.d })
	names := make([]string, 0, 3)
	for _, c := range near[:min(3, len(near))] {
		names = append(names, c.s)
	}
	return "; did you mean " + strings.Join(names, " or ") + "?"
}
