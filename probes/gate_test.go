package probes_test

import (
	"errors"
	"testing"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/probes"
)

// Which addresses a store's credentials may go to: its own, and what
// allow lists (host:port, or an IP prefix for any port); a store with
// nothing secret has no gate.
func TestCredentialsGoOnlyWhereTheTopologySays(t *testing.T) {
	st := &config.Store{Name: "r", Kind: "redis", Addresses: []string{"sentinel-a.aie.prod:26379", "10.1.0.5:26379"},
		Password: &config.SecretRef{Env: "X"}, Allow: []string{"10.20.0.0/16", "Master.aie.prod:6379"}}
	gate := probes.CredentialGate(st)
	for addr, ok := range map[string]bool{
		"sentinel-a.aie.prod:26379": true, "10.1.0.5:26379": true, "master.aie.prod:6379": true,
		"10.20.3.4:6379": true, "10.20.3.4:1": true, "[::ffff:10.20.3.4]:6379": true,
		"10.21.0.1:6379": false, "sentinel-a.aie.prod:6379": false, "evil.example:6379": false, "10.1.0.5:6379": false,
	} {
		err := gate(addr)
		if (err == nil) != ok {
			t.Errorf("%s: %v, want allowed=%v", addr, err, ok)
		}
		if err != nil && !errors.Is(err, probes.ErrCredentialsWithheld) {
			t.Errorf("%s: %v is not ErrCredentialsWithheld", addr, err)
		}
	}
	if probes.CredentialGate(&config.Store{Name: "k", Kind: "kafka", Address: "b:9092"}) != nil {
		t.Error("a store without credentials has a gate")
	}
}
