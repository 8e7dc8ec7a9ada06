package targets

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/internal/similar"
)

// UnknownPathError is returned when a query matches no documented path.
type UnknownPathError struct {
	Query   string
	Nearest []string
}

func (e *UnknownPathError) Error() string {
	msg := fmt.Sprintf("no documented path matches %q", e.Query)
	if len(e.Nearest) > 0 {
		msg += "; nearest known paths: " + strings.Join(e.Nearest, ", ")
	}
	return msg
}

// ResolveLive finds the paths an operator means by query: a path ID as
// printed by `probe list` ("api.allinpro.com/futures/ws*",
// "svc/landry/landry-ces-matchengine"), or a host and request path
// ("api.allinpro.com/futures/ws", optionally with a scheme) matched the
// way APISIX matches. A route reached through several entries yields one
// path per entry. live adds the pods and nodes discovery sees (see
// ExpandLive); nil is the documented topology alone.
func ResolveLive(cfg *config.Config, vantage, query string, live *Live) ([]*Path, error) {
	all, err := expand(cfg, vantage, live)
	if err != nil {
		return nil, err
	}
	for _, p := range all {
		if p.ID == query {
			return []*Path{p}, nil
		}
	}
	host, reqPath := splitQuery(query)
	r, matchedHost := MatchRoute(cfg, host, reqPath)
	if r == nil {
		return nil, &UnknownPathError{Query: query, Nearest: Nearest(IDs(all), query, 5)}
	}
	if strings.HasPrefix(matchedHost, "*.") {
		// The operator named a concrete host under the wildcard: probe it.
		r = withProbeHost(r, host)
	}
	var out []*Path
	for _, e := range r.Entries {
		out = append(out, routePath(routeSpec{cfg: cfg, vantage: vantage, r: r, host: matchedHost, entry: e, reqPath: reqPath, live: live}))
	}
	return out, nil
}

// CatchAllError is returned by CloserRoutes when a request path reaches
// only a host's catch-all (or a shorter prefix) while another route of
// the host is a near miss: what was typed was most likely that route.
type CatchAllError struct {
	Query   string
	Matched string   // the route that would answer: host and path pattern
	Closer  []string // near routes of the host, as `probe --path` takes them
}

func (e *CatchAllError) Error() string {
	return fmt.Sprintf("%q reaches only %s, a catch-all; did you mean %s? (give --allow-catch-all to walk %s anyway)",
		e.Query, e.Matched, strings.Join(e.Closer, " or "), e.Matched)
}

// CloserRoutes checks a host and request path query (see ResolveLive)
// against typing mistakes: when the route APISIX would pick is a prefix
// route and another route of the host, more specific than it, is within
// two edits of the request path, it returns a *CatchAllError naming
// those routes. APISIX would route the request the same way, but a
// person who types a path means a route. A path ID, an exact match and
// a query that matches no route return nil.
func CloserRoutes(cfg *config.Config, query string) error {
	host, reqPath := splitQuery(query)
	r, matchedHost := MatchRoute(cfg, host, reqPath)
	if r == nil {
		return nil
	}
	matched, isPrefix := strings.CutSuffix(r.Path, "*")
	if !isPrefix {
		return nil
	}
	var closer []string
	for i := range cfg.Routes {
		o := &cfg.Routes[i]
		if o == r || !slices.ContainsFunc(o.Hosts, func(h string) bool { return HostMatches(h, host) }) {
			continue
		}
		want, oPrefix := strings.CutSuffix(o.Path, "*")
		if len(want) <= len(matched) {
			continue // no more specific than what matched
		}
		typed := reqPath
		if oPrefix && len(typed) > len(want)+2 {
			typed = typed[:len(want)+2] // compare the part the prefix covers
		}
		d := similar.Edits(typed, want)
		if oPrefix {
			d = min(d, similar.Edits(reqPath[:min(len(reqPath), len(want))], want))
		}
		if d > 0 && d <= 2 {
			closer = append(closer, host+want)
		}
	}
	if len(closer) == 0 {
		return nil
	}
	slices.Sort(closer)
	return &CatchAllError{Query: query, Matched: matchedHost + r.Path, Closer: slices.Compact(closer)}
}

// splitQuery takes a host and request path as an operator types it
// (optionally with a scheme, a query or a fragment) apart.
func splitQuery(query string) (host, path string) {
	q := query
	for _, s := range []string{"https://", "http://", "wss://", "ws://"} {
		q = strings.TrimPrefix(q, s)
	}
	host, path, _ = strings.Cut(q, "/")
	path = "/" + path
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	return strings.ToLower(host), path
}

func withProbeHost(r *config.Route, host string) *config.Route {
	c := *r
	c.Probe.Host = host
	return &c
}

// MatchRoute picks the route APISIX would pick for host and path: routes
// for the exact host before wildcard hosts, then an exact path before
// prefixes, then the longest prefix. It returns the matching host
// pattern too.
func MatchRoute(cfg *config.Config, host, path string) (*config.Route, string) {
	type cand struct {
		r        *config.Route
		host     string
		wildcard bool
		exact    bool
		prefix   int
	}
	var best *cand
	better := func(a, b *cand) bool {
		if a.wildcard != b.wildcard {
			return !a.wildcard
		}
		if a.exact != b.exact {
			return a.exact
		}
		return a.prefix > b.prefix
	}
	for i := range cfg.Routes {
		r := &cfg.Routes[i]
		for _, h := range r.Hosts {
			wild := strings.HasPrefix(h, "*.")
			if !HostMatches(h, host) {
				continue
			}
			c := &cand{r: r, host: h, wildcard: wild}
			if pre, ok := strings.CutSuffix(r.Path, "*"); ok {
				if !strings.HasPrefix(path, pre) {
					continue
				}
				c.prefix = len(pre)
			} else if r.Path == path {
				c.exact = true
			} else {
				continue
			}
			if best == nil || better(c, best) {
				best = c
			}
		}
	}
	if best == nil {
		return nil, ""
	}
	return best.r, best.host
}

// HostMatches reports whether host pattern (possibly "*.suffix") covers host.
func HostMatches(pattern, host string) bool {
	pattern = strings.ToLower(pattern)
	if suffix, ok := strings.CutPrefix(pattern, "*"); ok {
		return strings.HasSuffix(host, suffix) && len(host) > len(suffix)
	}
	return pattern == host
}

// Nearest returns up to n candidates most like q: first by how well q
// fits somewhere inside the candidate (what was typed is usually a part
// of a path ID: "futures/ws" of "api.allinpro.com/futures/ws*"), then by
// the edit distance of the whole.
func Nearest(candidates []string, q string, n int) []string {
	type scored struct {
		s       string
		in, all int
	}
	q = strings.ToLower(q)
	sc := make([]scored, len(candidates))
	for i, c := range candidates {
		lc := strings.ToLower(c)
		sc[i] = scored{c, similar.EditsWithin(q, lc), similar.Edits(lc, q)}
	}
	sort.SliceStable(sc, func(i, j int) bool {
		if sc[i].in != sc[j].in {
			return sc[i].in < sc[j].in
		}
		return sc[i].all < sc[j].all
	})
	var out []string
	for i := 0; i < len(sc) && i < n; i++ {
		out = append(out, sc[i].s)
	}
	return out
}
