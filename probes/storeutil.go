package probes

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	"github.com/allinx/hopprobe/config"
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
func storeCreds(t *Target) (string, *tls.Config, error) {
	pw, err := storePassword(t.Store)
	if err != nil {
		return "", nil, err
	}
	tc, err := storeTLS(t)
	return pw, tc, err
}

// storeTLS returns nil when the store is reached in clear text.
func storeTLS(t *Target) (*tls.Config, error) {
	if t.Store.TLS == nil {
		return nil, nil
	}
	return tlsConfig(t.Store.TLS, t.Host)
}

// storePassword resolves the store's password reference.
func storePassword(s *config.Store) (string, error) {
	pw, err := s.Password.Resolve()
	if err == nil {
		err = config.CheckSecret(pw)
	}
	if err != nil {
		return "", fmt.Errorf("credentials for %s (%s): %w", s.Name, s.Password, err)
	}
	return pw, nil
}

// remaining is the time left before ctx's deadline (a client library
// timeout must never outlive the probe).
func remaining(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return max(time.Until(dl), time.Millisecond)
	}
	return 5 * time.Second
}
