package probes

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/internal/peers"
)

// With TLS verification on, an address the topology does not list still
// receives a store's credentials if, and only if, its certificate proves
// it is a host name the topology gives the store. The peer listens on
// 127.0.0.2, for which its certificate is not valid, and counts the
// bytes it is sent after the handshake: the credentials a library would
// send next.
func TestAVerifiedNameOpensTheGateForUnlistedAddresses(t *testing.T) {
	pki, err := peers.NewPKI(t.TempDir(), []string{"redis-master.example.test"}, "hopprobe")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := pki.ServerTLS(false)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.2:0", srv)
	if err != nil {
		t.Fatalf("cannot listen on 127.0.0.2 (the loopback /8): %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	var after atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(3 * time.Second))
				buf := make([]byte, 64)
				n, _ := c.Read(buf) // completes the handshake, then reads
				after.Add(int64(n))
			}()
		}
	}()
	t.Setenv("HOPPROBE_TEST_VERIFIED_PW", "Verified-Name-Secret")
	for _, tc := range []struct {
		name     string
		allow    []string
		insecure bool
		want     string // "" for reached
	}{
		{"the certificate is for a documented name", []string{"redis-master.example.test:6379"}, false, ""},
		{"the certificate is for no documented name", []string{"other.example.test:6379"}, false, "does not prove it is"},
		{"verification is off", []string{"redis-master.example.test:6379"}, true, "credentials withheld"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &config.Store{Name: "futuresredis", Kind: "redis", Address: "sentinel-a.example.test:26379", Allow: tc.allow,
				Password: &config.SecretRef{Env: "HOPPROBE_TEST_VERIFIED_PW"}, TLS: &config.TLS{CAFile: pki.CA, InsecureSkipVerify: tc.insecure}}
			tlsc, err := tlsConfig(st.TLS, "")
			if err != nil {
				t.Fatal(err)
			}
			ctx, sc := withScope(context.Background(), 0)
			defer sc.end()
			sc.gate, sc.names = credentialGate(st), documentedNames(st)
			before := after.Load()
			c, err := sc.dialTLS(ctx, "tcp", ln.Addr().String(), tlsc)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("a peer proving it is redis-master.example.test was refused: %v", err)
				}
				if _, err := c.Write([]byte("AUTH x\r\n")); err != nil {
					t.Fatal(err)
				}
				c.Close()
				for deadline := time.Now().Add(3 * time.Second); after.Load() == before && time.Now().Before(deadline); {
					time.Sleep(10 * time.Millisecond)
				}
				if after.Load() == before {
					t.Fatal("the peer never received what the probe sent after the handshake")
				}
				return
			}
			if err == nil || !errors.Is(err, ErrCredentialsWithheld) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a withheld credential saying %q", err, tc.want)
			}
			t.Log(err)
			if !strings.Contains(err.Error(), ln.Addr().String()) {
				t.Errorf("the refusal does not name the address: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
			if after.Load() != before {
				t.Errorf("the unproven peer received %d bytes after the handshake", after.Load()-before)
			}
		})
	}
}
