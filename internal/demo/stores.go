package demo

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/internal/peers"
)

// startStores runs a real server for every data store of the demo
// topology: Kafka in-process, redis-server, postgres and etcd from the
// machine's packages. A store whose server is not installed is left down
// (its hop fails, truthfully) and a warning says what to install.
func (d *Demo) startStores(cfg *config.Config) error {
	for i := range cfg.Stores {
		st := &cfg.Stores[i]
		if err := loopback(st.Address); err != nil {
			return err
		}
		pw := ""
		if st.Password != nil && st.Password.File != "" {
			var err error
			if pw, err = writeSecret(st.Password.File); err != nil {
				return err
			}
		}
		start := func() (*peers.Server, error) {
			switch st.Kind {
			case "kafka":
				var topics []string
				if st.Kafka != nil {
					topics = append(topics, st.Kafka.Topics...)
					if st.Kafka.CanaryTopic != "" {
						topics = append(topics, st.Kafka.CanaryTopic)
					}
				}
				return peers.Kafka(st.Address, topics...)
			case "redis":
				return peers.Redis(st.Address, pw, "")
			case "postgres":
				return peers.Postgres(st.Address, st.Username, pw)
			case "etcd":
				return peers.Etcd(st.Address)
			}
			return nil, fmt.Errorf("no stand-in for kind %q", st.Kind)
		}
		srv, err := start()
		if errors.Is(err, peers.ErrMissing) {
			slog.Warn("demo: data store left down; its hops will fail", "store", st.Name, "reason", err)
			continue
		}
		if err != nil {
			return fmt.Errorf("demo: store %s: %w", st.Name, err)
		}
		d.restarts[st.Name] = func() error {
			srv, err := start()
			if err != nil {
				return err
			}
			d.add(st.Name, func() error { srv.Stop(); return nil })
			return nil
		}
		d.add(st.Name, func() error { srv.Stop(); return nil })
	}
	return nil
}

// writeSecret creates a random password at path (shared by the demo
// server and the prober), or reuses the one already there.
func writeSecret(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
		return string(b), nil
	}
	buf := make([]byte, 12)
	_, _ = rand.Read(buf)
	pw := hex.EncodeToString(buf)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	return pw, os.WriteFile(path, []byte(pw), 0o600)
}
