// Package probes holds one prober per protocol behind the Prober
// interface. Every prober is registered in registry.go; Run is the single
// entry point that bounds a probe by its timeout, turns "must not answer"
// hops around and scrubs secrets out of errors.
package probes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/allinx/hopprobe/config"
)

// Kind names a protocol; it is the "kind" label of every hop metric.
type Kind string

// Target is everything a prober needs to know about one hop.
type Target struct {
	// Address is host:port to connect to. It may differ from Host when a
	// request is sent to a load balancer on behalf of a virtual host.
	Address string
	// Host is the name to resolve (dns), the TLS server name and the HTTP
	// Host header.
	Host string
	// Scheme is http or https for HTTP and WebSocket hops.
	Scheme string
	// Path is the request path for HTTP and WebSocket hops.
	Path string
	// Resolver is the DNS server host:port for dns hops; empty = system.
	Resolver string
	TLS      *config.TLS
	Expect   config.Expect
	// MaxBodyBytes caps an HTTP body or a WebSocket message.
	MaxBodyBytes int64
	// MaxResponseBytes caps everything the probe reads from its peers,
	// all connections together; 0 means DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// Store is set for data-store hops.
	Store *config.Store
	// EvidenceHeaders are response headers to keep beyond the built-in
	// ones (EvidenceHeaders), for a topology's own fingerprints.
	EvidenceHeaders []string
	// ExpectUnreachable inverts the verdict: the hop is healthy only when
	// nothing answers (a NodePort that must stay internal).
	ExpectUnreachable bool
	// DualStack (dns hops): the name must have both A and AAAA records.
	DualStack bool
}

// peerName names the hop's peer in a reason: the store, else the address.
func (t *Target) peerName() string {
	switch {
	case t.Store != nil:
		return t.Store.Name
	case t.Address != "":
		return t.Address
	case t.Resolver != "":
		return "resolver " + t.Resolver
	}
	return "the system resolver"
}

// Key identifies what a probe really does, so that paths sharing a hop
// share one probe per interval.
func (t *Target) Key(kind Kind) string {
	store := ""
	if t.Store != nil {
		store = t.Store.Name
	}
	return fmt.Sprintf("%s|%s|%s|%s|%s|%s|%s|%v|%v|%v|%v", kind, t.Address, t.Host, t.Scheme, t.Path, t.Resolver, store, t.ExpectUnreachable, t.Expect, t.EvidenceHeaders, t.DualStack)
}

// Prober speaks one protocol. Probe returns nil when the hop answered as
// expected and fills rep with phase timings and details either way. It
// must return promptly once ctx is done.
type Prober interface {
	Probe(ctx context.Context, t *Target, rep *Report) error
}

// Phase is one timed step of a probe (connect, tls, first_byte, …).
type Phase struct {
	Name     string        `json:"name"`
	Duration time.Duration `json:"duration_ns"`
}

// Report is what a prober observed besides success.
type Report struct {
	Phases []Phase
	// CertExpiry is when the chain the client verified expires (the
	// earliest NotAfter in it), or the earliest of what the peer sent
	// when nothing was verified.
	CertExpiry time.Time
	// Details are small facts for humans (status code, role, address).
	// They go to the JSON status and CLI, never into metric labels.
	Details map[string]string
}

// AddPhase records a timed step.
func (r *Report) AddPhase(name string, d time.Duration) {
	r.Phases = append(r.Phases, Phase{Name: name, Duration: d})
}

// Detail records a fact for humans.
func (r *Report) Detail(k, v string) {
	if r.Details == nil {
		r.Details = map[string]string{}
	}
	r.Details[k] = v
}

// since times a phase that started at start.
func (r *Report) since(name string, start time.Time) {
	r.AddPhase(name, time.Since(start))
}

// Result is the outcome of one probe.
type Result struct {
	Success  bool
	Start    time.Time
	Duration time.Duration
	// Error is operator-readable and already scrubbed of secrets.
	Error string
	Report
}

// Run probes one hop, bounded by timeout and by the target's byte
// budget. Whatever the peer sends, Run returns: a panic inside a prober
// (a client library tripping over a reply) is the hop's failure, counted
// in PanicCount, and every text it returns is scrubbed and bounded.
func Run(ctx context.Context, kind Kind, t *Target, timeout time.Duration) Result {
	res := Result{Start: time.Now()}
	e, ok := registry[kind]
	if !ok {
		res.Error = fmt.Sprintf("no prober for kind %q", kind)
		return res
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ctx, sc := withScope(ctx, t.MaxResponseBytes)
	defer sc.end()
	err := protect(ctx, e.prober, kind, t, &res.Report)
	res.Duration = time.Since(res.Start)
	switch over := sc.overLimit(); {
	case over != nil:
		// Libraries wrap, replace or drop the budget's error; the reason
		// an operator needs is the limit, and whose it was.
		err = connected(fmt.Errorf("%s: %w", t.peerName(), over))
	case err != nil && (ctx.Err() == context.DeadlineExceeded || res.Duration >= timeout):
		// Socket deadlines set from ctx can fire a hair before ctx itself.
		err = fmt.Errorf("no answer within %s: %w", timeout, err)
	}
	if t.ExpectUnreachable {
		err = invertReachability(t, err)
	}
	res.Success = err == nil
	if err != nil {
		res.Error = scrub(err.Error(), t, MaxReasonBytes)
	}
	for k, v := range res.Details {
		res.Details[k] = scrub(v, t, MaxDetailBytes)
	}
	return res
}

// panics counts recovered panics per kind; the map is filled once from
// the registry and only read afterwards.
var panics = func() map[Kind]*atomic.Uint64 {
	m := make(map[Kind]*atomic.Uint64, len(registry))
	for k := range registry {
		m[k] = new(atomic.Uint64)
	}
	return m
}()

// PanicCount is how many probes of kind panicked since start.
func PanicCount(kind Kind) uint64 {
	if c, ok := panics[kind]; ok {
		return c.Load()
	}
	return 0
}

// protect runs one probe and turns a panic into its error: one reply a
// client library cannot handle must never take every path's monitoring
// down with it.
func protect(ctx context.Context, p Prober, kind Kind, t *Target, rep *Report) (err error) {
	defer func() {
		if r := recover(); r != nil {
			panics[kind].Add(1)
			slog.Debug("probe panicked", "kind", kind, "address", t.Address, "panic", scrub(fmt.Sprint(r), t, MaxReasonBytes), "stack", string(debug.Stack()))
			err = connected(fmt.Errorf("probe panicked (the peer's reply broke the %s client): %v", kind, r))
		}
	}()
	return p.Probe(ctx, t, rep)
}

// invertReachability turns a "must not answer" hop's outcome around: a
// refused or unanswered connection is the healthy state.
func invertReachability(t *Target, err error) error {
	if err == nil {
		return fmt.Errorf("SECURITY: %s answered but must not be reachable from this vantage", t.Address)
	}
	if Unreachable(err) {
		return nil
	}
	return fmt.Errorf("SECURITY: %s accepted a connection but must not be reachable from this vantage (%v)", t.Address, err)
}

// Unreachable reports whether err means nothing answered at all, as
// opposed to a peer that answered wrongly.
func Unreachable(err error) bool {
	var dnsErr *net.DNSError
	var opErr *net.OpError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH), errors.As(err, &dnsErr):
		return true
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return true
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		// Only a dial can time out in a pure connect probe; probers that
		// get further wrap their errors in ErrConnected.
		return !errors.Is(err, ErrConnected)
	}
	return false
}

// ErrConnected marks errors that happened after a connection was made.
var ErrConnected = errors.New("connected")

// connected wraps err so that Unreachable knows a peer did answer.
func connected(err error) error {
	if err == nil {
		return nil
	}
	return connectedError{err}
}

type connectedError struct{ err error }

func (e connectedError) Error() string        { return e.err.Error() }
func (e connectedError) Unwrap() error        { return e.err }
func (e connectedError) Is(target error) bool { return target == ErrConnected }
