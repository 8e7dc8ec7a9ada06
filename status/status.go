// Package status says what a walk meant: each hop's verdict and the
// path's, the chain of components the answer showed (attested once per
// walk), the kept walks with the evidence changes between them, and the
// board of every path's last walk that the pages, the JSON API, the
// health endpoints and the CLI read. It links no driver and no
// exporter: the runner feeds it, then hands what it made of a walk to
// the exporter.
package status

import (
	"slices"
	"time"

	"github.com/allinx/hopprobe/chain"
	"github.com/allinx/hopprobe/hop"
	"github.com/allinx/hopprobe/scheduler"
	"github.com/allinx/hopprobe/targets"
)

// Hop verdicts: a walk's (scheduler.HopResult.Verdict), and pending
// before the first walk.
const (
	VerdictOK        = scheduler.VerdictOK
	VerdictFailed    = scheduler.VerdictFailed
	VerdictSkipped   = scheduler.VerdictSkipped
	VerdictNotProbed = scheduler.VerdictNotProbed
	VerdictPending   = "pending"
	// VerdictBypassed: every hop answered, but the answer skipped a
	// documented component (the gateway): as loud as a failure, told
	// apart from it.
	VerdictBypassed = "bypassed"
)

// HopStatus is one hop's last verdict, as served on /api/v1/paths and
// printed by the CLI.
type HopStatus struct {
	Name       string             `json:"name"`
	Kind       string             `json:"kind"`
	Target     string             `json:"target"`
	Verdict    string             `json:"verdict"`
	LatencyMS  float64            `json:"latency_ms"`
	Error      string             `json:"error,omitempty"`
	Phases     map[string]float64 `json:"phases_ms,omitempty"`
	Details    map[string]string  `json:"details,omitempty"`
	CertExpiry *time.Time         `json:"cert_expiry,omitempty"`
	Shared     bool               `json:"shared,omitempty"`
	FirstFail  bool               `json:"first_failing,omitempty"`
	// Attempts is how many probes the walk made of the hop, when more
	// than one: a failure was probed again (defaults.confirm). With
	// verdict ok it recovered, and FirstError is what the first attempt
	// saw; it is not a failure and does not page.
	Attempts   int    `json:"attempts,omitempty"`
	Recovered  bool   `json:"recovered,omitempty"`
	FirstError string `json:"first_error,omitempty"`
	// Components are the components whose marks this hop's answer
	// carried (entry hops that send the route's request).
	Components []string `json:"components,omitempty"`
	// Recent are the hop's latencies over the kept walks, oldest first,
	// -1 where it did not answer (served by /api/v1/paths only).
	Recent []float64 `json:"recent_ms,omitempty"`
}

// PathStatus is one path's last walk.
type PathStatus struct {
	ID              string     `json:"id"`
	Kind            string     `json:"kind"`
	Vantage         string     `json:"vantage"`
	Namespace       string     `json:"namespace"`
	Service         string     `json:"service"`
	Verdict         string     `json:"verdict"`
	FirstFailingHop string     `json:"first_failing_hop,omitempty"`
	LastWalk        *time.Time `json:"last_walk,omitempty"`
	DurationMS      float64    `json:"duration_ms"`
	// Chain says whether the answer showed the documented way in (route
	// paths only).
	Chain *chain.Result `json:"chain,omitempty"`
	// Bypassed are the documented components the answer skipped (verdict
	// bypassed).
	Bypassed []string    `json:"bypassed,omitempty"`
	Hops     []HopStatus `json:"hops"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Pending describes a path that has not been walked yet.
func Pending(p *targets.Path) PathStatus { return pendingWith(p, describe(p)) }

// describe names each hop's target, as the status shows it.
func describe(p *targets.Path) []string {
	out := make([]string, len(p.Hops))
	for i := range p.Hops {
		out[i] = p.Hops[i].Describe()
	}
	return out
}

// pendingWith is Pending with the hops' targets already described.
func pendingWith(p *targets.Path, described []string) PathStatus {
	ps := PathStatus{ID: p.ID, Kind: p.Kind, Vantage: p.Vantage, Namespace: p.Namespace, Service: p.Service, Verdict: VerdictPending,
		Hops: make([]HopStatus, 0, len(p.Hops))}
	for i := range p.Hops {
		h := &p.Hops[i]
		hs := HopStatus{Name: h.Name, Kind: string(h.Kind), Target: described[i], Verdict: VerdictPending}
		if h.Skip != "" {
			hs.Verdict, hs.Error = VerdictSkipped, h.Skip
		}
		ps.Hops = append(ps.Hops, hs)
	}
	return ps
}

// StatusOf turns a walk into its status record.
func StatusOf(r scheduler.PathResult) PathStatus { return statusFrom(r, describe(r.Path)) }

// statusFrom is StatusOf with the hops' targets already described.
func statusFrom(r scheduler.PathResult, described []string) PathStatus {
	ps := pendingWith(r.Path, described)
	ps.Verdict = VerdictOK
	if !r.Success {
		ps.Verdict = VerdictFailed
	}
	if r.FirstFailing >= 0 && r.FirstFailing < len(r.Path.Hops) {
		ps.FirstFailingHop = r.Path.Hops[r.FirstFailing].Name
	}
	start := r.Start
	ps.LastWalk = &start
	ps.DurationMS = ms(r.Duration)
	for i, hr := range r.Hops {
		hs := &ps.Hops[i]
		hs.Error = hr.Error
		hs.Verdict = hr.Verdict()
		if hr.Skipped || hr.NotProbed {
			continue
		}
		hs.LatencyMS = ms(hr.Duration)
		hs.Shared = hr.Shared
		if hr.Attempts > 1 {
			hs.Attempts, hs.Recovered, hs.FirstError = hr.Attempts, hr.Recovered(), hr.FirstError
		}
		hs.FirstFail = i == r.FirstFailing
		hs.Details = hr.Details
		if len(hr.Phases) > 0 {
			hs.Phases = map[string]float64{}
			for _, ph := range hr.Phases {
				hs.Phases[ph.Name] += ms(ph.Duration)
			}
		}
		if !hr.CertExpiry.IsZero() {
			exp := hr.CertExpiry
			hs.CertExpiry = &exp
		}
	}
	ps.Chain = attest(r)
	if ps.Verdict == VerdictOK {
		if skipped := ps.Chain.Bypassed(); len(skipped) > 0 {
			ps.Verdict, ps.Bypassed = VerdictBypassed, skipped
		}
	}
	for i, h := range r.Path.Hops {
		if hr := r.Hops[i]; h.Layer > 0 && hr.Details["status"] != "" {
			ps.Hops[i].Components = chain.Observe(chain.Union(r.Path.Entry[h.Layer-1:], r.Path.Alternatives), answerHeader(hr.Details))
		}
	}
	return ps
}

// answerHeader reads a response header back from a hop's evidence.
func answerHeader(details map[string]string) func(string) string {
	return func(name string) string { return details[hop.HeaderDetail(name)] }
}

// attest reads the chain from the first entry hop that sent the route's
// request and got an answer (a status line) it accepted: CloudFront's when it is
// probed, else the first layer behind it, which shows only its own part
// of the chain. Nil for a path without an entry.
func attest(r scheduler.PathResult) *chain.Result {
	p := r.Path
	if len(p.Entry) == 0 {
		return nil
	}
	for i, h := range p.Hops {
		hr := r.Hops[i]
		if h.Layer == 0 || hr.Skipped || hr.NotProbed || hr.Details["status"] == "" {
			continue
		}
		var alts []chain.Alternative
		var expected []string
		if h.Layer == 1 {
			alts = p.Alternatives
		}
		if p.ExpectChain != nil {
			// The route's own chain, less the layers before this one.
			expected = []string{}
			for _, c := range p.Entry[h.Layer-1:] {
				if slices.Contains(p.ExpectChain, c.Name) {
					expected = append(expected, c.Name)
				}
			}
		}
		res := chain.Attest(p.Entry[h.Layer-1:], expected, alts, answerHeader(hr.Details))
		res.Hop = h.Name
		// An error page proves no bypass: when APISIX is down, the ALB's
		// 502 carries no APISIX marks. Only an answer the hop accepted is
		// attested; an error keeps what it showed, as evidence.
		if !hr.Success {
			res.Verdict, res.Detail = chain.Unknown, "the answer was an error; only accepted answers are attested"
		}
		return &res
	}
	return &chain.Result{Verdict: chain.Unknown, Expected: chain.Expected(p.Entry), Detail: "no entry hop answered"}
}
