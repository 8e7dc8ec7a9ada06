package probes

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/hop"
)

// storeAddrs lists the addresses of a data store: Addresses when given
// (cluster, sentinel, brokers), else Address.
func storeAddrs(s *config.Store) []string {
	if len(s.Addresses) > 0 {
		return s.Addresses
	}
	return []string{s.Address}
}

// storeCreds resolves what a store client needs to log in: the password
// and the TLS config (nil for clear text).
func storeCreds(t *hop.Target) (string, *tls.Config, error) {
	pw, err := storePassword(t.Store)
	if err != nil {
		return "", nil, err
	}
	tc, err := storeTLS(t)
	return pw, tc, err
}

// storeTLS returns nil when the store is reached in clear text.
func storeTLS(t *hop.Target) (*tls.Config, error) {
	if t.Store.TLS == nil {
		return nil, nil
	}
	return tlsConfig(t.Store.TLS, t.Host)
}

// storePassword resolves the store's password reference.
func storePassword(s *config.Store) (string, error) {
	return resolveSecret(s.Password, "credentials for "+s.Name)
}

// resolveSecret reads a secret reference and refuses a secret too short
// to be scrubbed from messages; what names it in the error.
func resolveSecret(ref *config.SecretRef, what string) (string, error) {
	v, err := ref.Resolve()
	if err == nil {
		err = config.CheckSecret(v)
	}
	if err != nil {
		return "", fmt.Errorf("%s (%s): %w", what, ref, err)
	}
	return v, nil
}

// firstDial times the first connection a client library makes. Libraries
// dial from their own goroutines, which may outlive the probe, so the
// time is handed over under a lock, never written into the report there.
type firstDial struct {
	mu sync.Mutex
	d  time.Duration
}

// wrap times dial's calls; the first one to finish is kept.
func (f *firstDial) wrap(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		start := time.Now()
		c, err := dial(ctx, network, addr)
		f.mu.Lock()
		if f.d == 0 {
			f.d = time.Since(start)
		}
		f.mu.Unlock()
		return c, err
	}
}

// report adds the connect phase when a dial finished, and says whether
// one did.
func (f *firstDial) report(rep *hop.Report) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.d > 0 {
		rep.AddPhase("connect", f.d)
	}
	return f.d > 0
}

// remaining is the time left before ctx's deadline (a client library
// timeout must never outlive the probe).
func remaining(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return max(time.Until(dl), time.Millisecond)
	}
	return 5 * time.Second
}
