package probes_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/hop"
)

// Expiry is the verified chain's, as a client sees it: a server that
// sends an expired cross-signed certificate beside a valid chain is
// healthy and far from expiring (the expired one stays as evidence); a
// leaf that expires soon is what the expiry says.
func TestCertificateExpiryComesFromTheVerifiedChain(t *testing.T) {
	now := time.Now()
	mk := func(cn string, notAfter time.Time, pub *ecdsa.PublicKey, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, ca bool) *x509.Certificate {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-400 * 24 * time.Hour), NotAfter: notAfter, IsCA: ca, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}
		if !ca {
			tmpl.DNSNames = []string{"example.com"}
		}
		if parent == nil {
			parent = tmpl
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c
	}
	key := func() *ecdsa.PrivateKey { k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader); return k }
	rootKey, oldRootKey, leafKey := key(), key(), key()
	root := mk("root R1", now.Add(10*365*24*time.Hour), &rootKey.PublicKey, nil, rootKey, true)
	oldRoot := mk("old root R0", now.Add(-30*24*time.Hour), &oldRootKey.PublicKey, nil, oldRootKey, true)
	// R1 cross-signed by the old root, expired a month ago: what some
	// servers still send after a root migration.
	cross := mk("root R1", now.Add(-30*24*time.Hour), &rootKey.PublicKey, oldRoot, oldRootKey, true)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw}), 0o600)
	serve := func(chain ...*x509.Certificate) *httptest.Server {
		var raw [][]byte
		for _, c := range chain {
			raw = append(raw, c.Raw)
		}
		srv := httptest.NewUnstartedServer(http.NotFoundHandler())
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: raw, PrivateKey: leafKey}}}
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return srv
	}
	target := func(srv *httptest.Server) hop.Target {
		return hop.Target{Address: addr(srv), Host: "example.com", TLS: &config.TLS{CAFile: ca}}
	}

	leaf := mk("example.com", now.Add(90*24*time.Hour), &leafKey.PublicKey, root, rootKey, false)
	r := run(t, hop.KindTLS, target(serve(leaf, cross)), 2*time.Second)
	wantOK(t, r)
	if got := r.CertExpiry; !got.Equal(leaf.NotAfter) {
		t.Errorf("expiry %s with an expired cross-sign sent beside a valid chain, want the leaf's %s", got, leaf.NotAfter)
	}
	if got := r.Details["cert.sent_earliest_not_after"]; got != cross.NotAfter.UTC().Format(time.RFC3339) {
		t.Errorf("the evidence's earliest sent NotAfter is %q, want the cross-sign's %s", got, cross.NotAfter.UTC().Format(time.RFC3339))
	}

	soon := mk("example.com", now.Add(5*24*time.Hour), &leafKey.PublicKey, root, rootKey, false)
	r = run(t, hop.KindTLS, target(serve(soon, cross)), 2*time.Second)
	wantOK(t, r)
	if got := r.CertExpiry; !got.Equal(soon.NotAfter) {
		t.Errorf("expiry %s, want the soon-expiring leaf's %s", got, soon.NotAfter)
	}
}
