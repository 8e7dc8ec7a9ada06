package probes

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	"github.com/allinx/hopprobe/hop"
	"go.opentelemetry.io/otel/trace"
)

// EvidenceHeaders are the response headers an HTTP or WebSocket hop
// records as evidence, besides those a fingerprint names: what CloudFront,
// the load balancers, APISIX and ingress-nginx leave in an answer, and the
// request id a backend echoes. The component fingerprints of package
// chain read them.
var EvidenceHeaders = []string{"Alt-Svc", "Server", "Via", "X-Amz-Cf-Id", "X-Amz-Cf-Pop", "X-Cache", "X-Request-Id"}

// maxEvidenceHeaders bounds the extra headers a topology may ask for.
const maxEvidenceHeaders = 8

// recordHeaders keeps the evidence headers of an answer (HeaderDetail),
// several values joined with ", ". Probe's scrub bounds each value.
func recordHeaders(h http.Header, extra []string, rep *hop.Report) {
	names := EvidenceHeaders
	if len(extra) > 0 {
		names = append(append([]string(nil), EvidenceHeaders...), extra[:min(len(extra), maxEvidenceHeaders)]...)
	}
	for _, n := range names {
		if v := h.Values(n); len(v) > 0 {
			rep.Detail(hop.HeaderDetail(n), strings.Join(v, ", "))
		}
	}
}

// recordCert keeps when the chain a client verifies expires, and who
// the leaf certificate says the peer is. Of several verified chains the
// one that lasts longest is the one a client can still use; a server
// that also sends an expired cross-signed certificate (one the client
// does not need) does not make it expire. The earliest NotAfter among
// what was sent stays as evidence. Without verification (a store's
// insecure_skip_verify), the sent certificates are all there is.
func recordCert(cs tls.ConnectionState, rep *hop.Report) {
	var sent time.Time
	for _, c := range cs.PeerCertificates {
		if sent.IsZero() || c.NotAfter.Before(sent) {
			sent = c.NotAfter
		}
	}
	rep.CertExpiry = sent
	var best time.Time
	for _, chain := range cs.VerifiedChains {
		var end time.Time
		for _, c := range chain {
			if end.IsZero() || c.NotAfter.Before(end) {
				end = c.NotAfter
			}
		}
		if end.After(best) {
			best = end
		}
	}
	if !best.IsZero() {
		rep.CertExpiry = best
	}
	if !sent.IsZero() {
		rep.Detail("cert.sent_earliest_not_after", sent.UTC().Format(time.RFC3339))
	}
	if cs.Version != 0 {
		rep.Detail("tls_version", tls.VersionName(cs.Version))
	}
	if len(cs.PeerCertificates) == 0 {
		return
	}
	leaf := cs.PeerCertificates[0]
	sum := sha256.Sum256(leaf.Raw)
	rep.Detail("cert.sha256", hex.EncodeToString(sum[:]))
	rep.Detail("cert.subject", leaf.Subject.String())
	rep.Detail("cert.issuer", leaf.Issuer.String())
	rep.Detail("cert.not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	sans := leaf.DNSNames
	if len(sans) > 10 {
		sans = append(sans[:10:10], "…")
	}
	rep.Detail("cert.sans", strings.Join(sans, ","))
}

// requestIDs are the ids a probe request carries so that the backends'
// logs and traces can be joined to it: a W3C traceparent (the walk's
// trace and the hop's span when the walk is traced, else fresh ones) and
// an X-Request-Id, the trace id, which APISIX's request-id plugin and
// most access logs keep.
func requestIDs(ctx context.Context, h http.Header, rep *hop.Report) {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		var tid trace.TraceID
		var sid trace.SpanID
		_, _ = rand.Read(tid[:])
		_, _ = rand.Read(sid[:])
		sc = trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
	}
	h.Set("Traceparent", "00-"+sc.TraceID().String()+"-"+sc.SpanID().String()+"-"+sc.TraceFlags().String())
	h.Set("X-Request-Id", sc.TraceID().String())
	rep.Detail(hop.TraceIDDetail, sc.TraceID().String())
}
