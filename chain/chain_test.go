package chain_test

import (
	"net/http"
	"testing"

	"github.com/allinx/hopprobe/chain"
)

func answer(kv ...string) func(string) string {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h.Get
}

func comps(names ...string) []chain.Component {
	var out []chain.Component
	for _, n := range names {
		out = append(out, chain.Component{Name: n, Kind: chain.KindOf(n)})
	}
	return out
}

// The documented ways into www.allinpro.com and what each answer proves.
func TestAttest(t *testing.T) {
	public := comps("cloudfront", "alb-public", "apisix")
	nlb := comps("cloudfront", "awf-spa-nlb")
	viaCF := []string{"Via", "1.1 3f1a.cloudfront.net (CloudFront)", "X-Amz-Cf-Id", "abc=="}
	throughAPISIX := answer(append(viaCF, "Server", "APISIX/3.9.0")...)
	straight := answer(append(viaCF, "Server", "morph-awf-spa")...)
	albError := answer(append(viaCF, "Server", "awselb/2.0")...)
	for _, c := range []struct {
		name     string
		cs       []chain.Component
		expected []string
		alts     []chain.Alternative
		answer   func(string) string
		verdict  string
		detail   string
	}{
		{"documented way", public, nil, nil, throughAPISIX, chain.Matched, ""},
		{"gateway bypassed", public, nil, nil, straight, chain.Mismatch, "cloudfront answered without passing apisix"},
		{"the ALB's own error", public, nil, nil, albError, chain.Mismatch, "cloudfront answered without passing apisix; alb-public answered itself"},
		{"CloudFront used the NLB origin", public, nil, []chain.Alternative{{Entry: "awf-spa-nlb", Components: nlb}}, straight, chain.Alternate, "the answer came the way of entry awf-spa-nlb (cloudfront), not this path's"},
		{"the NLB path, answered through APISIX", nlb, nil, []chain.Alternative{{Entry: "public", Components: public}}, throughAPISIX, chain.Alternate, "the answer came the way of entry public (cloudfront>apisix), not this path's"},
		{"the NLB path, answered through the NLB", nlb, nil, []chain.Alternative{{Entry: "public", Components: public}}, straight, chain.Matched, "the answer came this path's way, not entry public's"},
		{"no CloudFront marks", public, nil, nil, answer("Server", "APISIX/3.9.0"), chain.Mismatch, "apisix answered without passing cloudfront"},
		{"an explicit chain", public, []string{"cloudfront"}, nil, straight, chain.Matched, ""},
		{"custom fingerprint", []chain.Component{{Name: "edge", Fingerprints: []chain.Fingerprint{{Header: "X-Edge", Contains: "pop"}}}}, nil, nil, answer("x-edge", "POP-1"), chain.Matched, ""},
	} {
		r := chain.Attest(c.cs, c.expected, c.alts, c.answer)
		if r.Verdict != c.verdict || r.Detail != c.detail {
			t.Errorf("%s: %s %q (observed %v), want %s %q", c.name, r.Verdict, r.Detail, r.Observed, c.verdict, c.detail)
		}
	}
}

func TestKindOf(t *testing.T) {
	for name, want := range map[string]string{"cloudfront": chain.CloudFront, "alb-public": chain.ALB, "alb-internal": chain.ALB,
		"awf-spa-nlb": chain.NLB, "apisix": chain.APISIX, "ingress-nginx": chain.Nginx, "varnish": ""} {
		if got := chain.KindOf(name); got != want {
			t.Errorf("KindOf(%q) = %q, want %q", name, got, want)
		}
	}
}
