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

	"github.com/allinx/hopprobe/hop"
)

// peerName names the hop's peer in a reason: the store, else the address.
func peerName(t *hop.Target) string {
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

// Prober speaks one protocol. Probe returns nil when the hop answered as
// expected and fills rep with phase timings and details either way. It
// must return promptly once ctx is done.
type Prober interface {
	Probe(ctx context.Context, t *hop.Target, rep *hop.Report) error
}

// since times a phase that started at start.
func since(r *hop.Report, name string, start time.Time) {
	r.AddPhase(name, time.Since(start))
}

// Run probes one hop, bounded by timeout and by the target's byte
// budget. Whatever the peer sends, Run returns: a panic inside a prober
// (a client library tripping over a reply) is the hop's failure, counted
// in PanicCount, and every text it returns is scrubbed and bounded.
func Run(ctx context.Context, kind hop.Kind, t *hop.Target, timeout time.Duration) hop.Result {
	res := hop.Result{Start: time.Now()}
	e, ok := registry[kind]
	if !ok {
		res.Error = fmt.Sprintf("no prober for kind %q", kind)
		return res
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ctx, sc := withScope(ctx, t.MaxResponseBytes)
	defer sc.end()
	sc.gate = credentialGate(t.Store)
	if sc.gate != nil {
		sc.names = documentedNames(t.Store)
	}
	err := protect(ctx, e.prober, kind, t, &res.Report)
	res.Duration = time.Since(res.Start)
	switch over := sc.overLimit(); {
	case over != nil:
		// Libraries wrap, replace or drop the budget's (and the
		// credential gate's) error; the reason an operator needs is the
		// limit, and whose it was.
		err = connected(fmt.Errorf("%s: %w", peerName(t), over))
	case err != nil && (ctx.Err() == context.DeadlineExceeded || res.Duration >= timeout):
		// Socket deadlines set from ctx can fire a hair before ctx itself.
		err = fmt.Errorf("no answer within %s: %w", timeout, err)
	}
	if t.ExpectUnreachable {
		err = invertReachability(t, err)
	}
	res.Success = err == nil
	if err != nil {
		res.Error = scrub(err.Error(), t, hop.MaxReasonBytes)
	}
	for k, v := range res.Details {
		res.Details[k] = scrub(v, t, hop.MaxDetailBytes)
	}
	return res
}

// panics counts recovered panics per kind; the map is filled once from
// the registry and only read afterwards.
var panics = func() map[hop.Kind]*atomic.Uint64 {
	m := make(map[hop.Kind]*atomic.Uint64, len(registry))
	for k := range registry {
		m[k] = new(atomic.Uint64)
	}
	return m
}()

// PanicCount is how many probes of kind panicked since start.
func PanicCount(kind hop.Kind) uint64 {
	if c, ok := panics[kind]; ok {
		return c.Load()
	}
	return 0
}

// protect runs one probe and turns a panic into its error: one reply a
// client library cannot handle must never take every path's monitoring
// down with it.
func protect(ctx context.Context, p Prober, kind hop.Kind, t *hop.Target, rep *hop.Report) (err error) {
	defer func() {
		if r := recover(); r != nil {
			panics[kind].Add(1)
			slog.Debug("probe panicked", "kind", kind, "address", t.Address, "panic", scrub(fmt.Sprint(r), t, hop.MaxReasonBytes), "stack", string(debug.Stack()))
			err = connected(fmt.Errorf("probe panicked (the peer's reply broke the %s client): %v", kind, r))
		}
	}()
	return p.Probe(ctx, t, rep)
}

// invertReachability turns a "must not answer" hop's outcome around: a
// refused or unanswered connection is the healthy state.
func invertReachability(t *hop.Target, err error) error {
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
