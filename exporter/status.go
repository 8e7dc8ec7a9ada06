package exporter

import (
	"time"

	"github.com/allinx/hopprobe/scheduler"
	"github.com/allinx/hopprobe/targets"
)

// Hop verdicts.
const (
	VerdictOK      = "ok"
	VerdictFailed  = "failed"
	VerdictSkipped = "skipped"
	// VerdictNotProbed: no probe slot came free in time; unknown, not failed.
	VerdictNotProbed = "not_probed"
	VerdictPending   = "pending"
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
}

// PathStatus is one path's last walk.
type PathStatus struct {
	ID              string      `json:"id"`
	Kind            string      `json:"kind"`
	Vantage         string      `json:"vantage"`
	Namespace       string      `json:"namespace"`
	Service         string      `json:"service"`
	Verdict         string      `json:"verdict"`
	FirstFailingHop string      `json:"first_failing_hop,omitempty"`
	LastWalk        *time.Time  `json:"last_walk,omitempty"`
	DurationMS      float64     `json:"duration_ms"`
	Hops            []HopStatus `json:"hops"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Pending describes a path that has not been walked yet.
func Pending(p *targets.Path) PathStatus {
	ps := PathStatus{ID: p.ID, Kind: p.Kind, Vantage: p.Vantage, Namespace: p.Namespace, Service: p.Service, Verdict: VerdictPending}
	for i := range p.Hops {
		h := &p.Hops[i]
		hs := HopStatus{Name: h.Name, Kind: string(h.Kind), Target: h.Describe(), Verdict: VerdictPending}
		if h.Skip != "" {
			hs.Verdict, hs.Error = VerdictSkipped, h.Skip
		}
		ps.Hops = append(ps.Hops, hs)
	}
	return ps
}

// StatusOf turns a walk into its status record.
func StatusOf(r scheduler.PathResult) PathStatus {
	ps := Pending(r.Path)
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
		switch {
		case hr.Skipped:
			hs.Verdict = VerdictSkipped
			continue
		case hr.NotProbed:
			hs.Verdict = VerdictNotProbed
			continue
		case hr.Success:
			hs.Verdict = VerdictOK
		default:
			hs.Verdict = VerdictFailed
		}
		hs.LatencyMS = ms(hr.Duration)
		hs.Shared = hr.Shared
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
	return ps
}
