// Package chain attests which components a request really passed. Each
// component leaves fingerprints in the answer (CloudFront its Via and
// X-Amz-Cf-Id, APISIX its Server header, an AWS load balancer its Server
// header on the answers it makes itself); a path states the chain it must
// show, derived from its documented entry hops, and a walk says whether
// the answer showed it, showed a documented alternative (CloudFront using
// another origin), or differs, as when CloudFront answered without
// passing APISIX and so without the gateway's plugins.
package chain

import (
	"fmt"
	"slices"
	"strings"
)

// Component kinds with built-in fingerprints.
const (
	CloudFront = "cloudfront"
	ALB        = "alb"
	NLB        = "nlb"
	APISIX     = "apisix"
	Nginx      = "nginx"
)

// Fingerprint is a mark a component leaves in an answer: a response
// header, and a text its value contains (any value when empty). Both are
// matched without regard to case.
type Fingerprint struct {
	Header   string `yaml:"header" json:"header"`
	Contains string `yaml:"contains" json:"contains,omitempty"`
}

// Builtin are the fingerprints of the known components. A load
// balancer marks only the answers it makes itself (its errors), an NLB
// none at all, so neither is expected on a healthy answer.
var Builtin = map[string][]Fingerprint{
	CloudFront: {{Header: "Via", Contains: "(CloudFront)"}, {Header: "X-Amz-Cf-Id"}},
	APISIX:     {{Header: "Server", Contains: "APISIX"}},
	Nginx:      {{Header: "Server", Contains: "nginx"}},
	ALB:        {{Header: "Server", Contains: "awselb"}},
}

// marksSuccess says which kinds mark an answer that went through them.
var marksSuccess = map[string]bool{CloudFront: true, APISIX: true, Nginx: true}

// KindOf guesses a component's kind from an entry hop's name, as the
// documents name them (cloudfront, alb-public, awf-spa-nlb, apisix).
func KindOf(name string) string {
	n := strings.ToLower(name)
	for _, k := range []string{CloudFront, APISIX, Nginx, NLB, ALB} {
		if strings.Contains(n, k) {
			return k
		}
	}
	if strings.Contains(n, "ingress") {
		return Nginx
	}
	return ""
}

// Component is one documented layer of an entry, as the attestation sees
// it.
type Component struct {
	// Name is the entry hop's name (cloudfront, apisix, …).
	Name string `json:"name"`
	Kind string `json:"kind,omitempty"`
	// Fingerprints override the kind's built-in ones.
	Fingerprints []Fingerprint `json:"fingerprints,omitempty"`
}

func (c Component) fingerprints() []Fingerprint {
	if len(c.Fingerprints) > 0 {
		return c.Fingerprints
	}
	return Builtin[c.Kind]
}

// Marks reports whether the component leaves a mark on an answer that
// passed through it: a known marking kind, or any component given its
// own fingerprints.
func (c Component) Marks() bool {
	return len(c.Fingerprints) > 0 || marksSuccess[c.Kind]
}

// Headers lists the headers the components' fingerprints read, for the
// probe to keep.
func Headers(cs []Component) []string {
	var out []string
	for _, c := range cs {
		for _, f := range c.fingerprints() {
			if !slices.ContainsFunc(out, func(h string) bool { return strings.EqualFold(h, f.Header) }) {
				out = append(out, f.Header)
			}
		}
	}
	return out
}

// Observe names the components whose fingerprints an answer carries, in
// the order of cs. header reads one response header ("" when absent).
func Observe(cs []Component, header func(string) string) []string {
	var out []string
	for _, c := range cs {
		for _, f := range c.fingerprints() {
			v := header(f.Header)
			if v != "" && strings.Contains(strings.ToLower(v), strings.ToLower(f.Contains)) {
				out = append(out, c.Name)
				break
			}
		}
	}
	return out
}

// Expected is the chain an answer through cs must show: the components
// that mark what passes through them.
func Expected(cs []Component) []string {
	var out []string
	for _, c := range cs {
		if c.Marks() {
			out = append(out, c.Name)
		}
	}
	return out
}

// Alternative is another documented way into the same route that starts
// at the same component (CloudFront with two origins).
type Alternative struct {
	Entry      string      `json:"entry"`
	Components []Component `json:"components"`
}

// Union is cs and the alternatives' components, each name once: what
// an answer on any of these ways may carry the marks of.
func Union(cs []Component, alts []Alternative) []Component {
	all := slices.Clone(cs)
	for _, a := range alts {
		for _, c := range a.Components {
			if !slices.ContainsFunc(all, func(x Component) bool { return x.Name == c.Name }) {
				all = append(all, c)
			}
		}
	}
	return all
}

// Verdicts.
const (
	Matched     = "matched"
	Alternate   = "alternative" // a documented alternative answered, not this path's way
	Mismatch    = "mismatch"
	Unknown     = "unknown" // nothing answered, or only with an error
	chainJoiner = ">"
)

// Result is a walk's attestation.
type Result struct {
	Verdict  string   `json:"verdict"`
	Expected []string `json:"expected"`
	Observed []string `json:"observed"`
	// Hop is the hop whose answer was read.
	Hop string `json:"hop,omitempty"`
	// Detail says what differs, or which alternative answered, in words.
	Detail string `json:"detail,omitempty"`
}

// Bypassed names the documented components the answer did not pass
// (a mismatch that skipped the gateway: its authentication and rate
// limits did not run), nil when none was skipped.
func (r *Result) Bypassed() []string {
	if r == nil || r.Verdict != Mismatch || len(r.Observed) == 0 {
		return nil
	}
	return missingFrom(r.Expected, r.Observed)
}

// missingFrom is what of expected observed lacks, in order.
func missingFrom(expected, observed []string) []string {
	var out []string
	for _, e := range expected {
		if !slices.Contains(observed, e) {
			out = append(out, e)
		}
	}
	return out
}

// String is a chain as a label value: "cloudfront>apisix", "-" when empty.
func String(c []string) string {
	if len(c) == 0 {
		return "-"
	}
	return strings.Join(c, chainJoiner)
}

// Attest reads the chain an answer shows (header reads one of its
// headers) and compares it with the one the documented components cs
// must show, and with the documented alternatives. The answer is read
// for the marks of every component either way may pass, so that an
// answer through APISIX is seen as such on the NLB's path too.
// expected, when not nil, replaces the chain cs implies.
func Attest(cs []Component, expected []string, alts []Alternative, header func(string) string) Result {
	observed := Observe(Union(cs, alts), header)
	if expected == nil {
		expected = Expected(cs)
	}
	r := Result{Expected: expected, Observed: observed}
	if same(expected, observed) {
		r.Verdict = Matched
		if len(alts) > 0 {
			var others []string
			for _, a := range alts {
				others = append(others, a.Entry)
			}
			r.Detail = fmt.Sprintf("the answer came this path's way, not entry %s's", strings.Join(others, " or "))
		}
		return r
	}
	for _, a := range alts {
		if want := Expected(a.Components); same(want, observed) {
			r.Verdict = Alternate
			r.Detail = fmt.Sprintf("the answer came the way of entry %s (%s), not this path's", a.Entry, String(want))
			return r
		}
	}
	r.Verdict = Mismatch
	missing := missingFrom(expected, observed)
	var itself, extra []string
	for _, o := range observed {
		if slices.Contains(expected, o) {
			continue
		}
		// A documented component that marks only its own answers (a load
		// balancer's error page) answered itself.
		if slices.ContainsFunc(cs, func(c Component) bool { return c.Name == o && !c.Marks() }) {
			itself = append(itself, o)
		} else {
			extra = append(extra, o)
		}
	}
	var parts []string
	first := "the answer"
	if len(observed) > 0 {
		first = observed[0]
	}
	if len(missing) > 0 {
		parts = append(parts, fmt.Sprintf("%s answered without passing %s", first, strings.Join(missing, " and ")))
	}
	if len(itself) > 0 {
		parts = append(parts, fmt.Sprintf("%s answered itself", strings.Join(itself, " and ")))
	}
	if len(extra) > 0 {
		parts = append(parts, fmt.Sprintf("%s left marks the documented chain does not have", strings.Join(extra, " and ")))
	}
	r.Detail = strings.Join(parts, "; ")
	return r
}

func same(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}
