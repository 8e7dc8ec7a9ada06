//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/allinx/hopprobe/internal/peers"
)

// cluster is etcd and one kube-apiserver in front of it, with an admin
// token (system:masters) for the test's own setup.
type cluster struct {
	dir, bin, addr string
	etcd           *peers.Server
	pki            *peers.PKI
	args           []string
	admin          *rest.Config
	cs             kubernetes.Interface
	api            *peers.Server // the running kube-apiserver
}

var (
	kube     *cluster
	kubeErr  error
	kubeOnce sync.Once
)

// theCluster starts the control plane on first use; every test shares it.
func theCluster(t *testing.T) *cluster {
	t.Helper()
	kubeOnce.Do(func() { kube, kubeErr = startCluster() })
	if errors.Is(kubeErr, peers.ErrMissing) && os.Getenv("CI") == "" {
		t.Skipf("SKIP: %v", kubeErr)
	}
	if kubeErr != nil {
		t.Fatal(kubeErr)
	}
	return kube
}

func stopCluster() {
	if kube != nil {
		kube.stopAPIServer()
		kube.etcd.Stop()
		os.RemoveAll(kube.dir)
	}
}

func startCluster() (_ *cluster, err error) {
	c := &cluster{bin: os.Getenv("HOPPROBE_KUBE_APISERVER")}
	if c.dir, err = os.MkdirTemp("", "hopprobe-e2e-"); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			if c.etcd != nil {
				c.etcd.Stop()
			}
			os.RemoveAll(c.dir)
		}
	}()
	if c.etcd, err = peers.Etcd(""); err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	if c.pki, err = peers.NewPKI(filepath.Join(c.dir, "pki"), []string{"localhost"}, "admin"); err != nil {
		return nil, err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalECPrivateKey(saKey)
	if err != nil {
		return nil, err
	}
	saKeyFile := filepath.Join(c.dir, "sa.key")
	if err := os.WriteFile(saKeyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	tok := make([]byte, 16)
	rand.Read(tok)
	admin := hex.EncodeToString(tok)
	tokens := filepath.Join(c.dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(admin+`,admin,admin,"system:masters"`+"\n"), 0o600); err != nil {
		return nil, err
	}
	if c.addr, err = peers.FreePort(); err != nil {
		return nil, err
	}
	host, port, _ := strings.Cut(c.addr, ":")
	c.args = []string{
		"--etcd-servers=http://" + c.etcd.Addr,
		"--bind-address=" + host, "--secure-port=" + port,
		// Not loopback (the API server refuses it); on the namespace's lo.
		"--advertise-address=10.246.0.1", "--endpoint-reconciler-type=none",
		"--service-cluster-ip-range=172.20.0.0/16", // the documented Services' ClusterIPs
		"--tls-cert-file=" + c.pki.ServerCert, "--tls-private-key-file=" + c.pki.ServerKey,
		"--cert-dir=" + filepath.Join(c.dir, "certs"),
		"--token-auth-file=" + tokens,
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + saKeyFile, "--service-account-signing-key-file=" + saKeyFile,
		"--profiling=false", "--v=1",
	}
	c.admin = &rest.Config{Host: "https://" + c.addr, BearerToken: admin,
		TLSClientConfig: rest.TLSClientConfig{CAFile: c.pki.CA}, QPS: 100, Burst: 200, Timeout: 30 * time.Second}
	if c.cs, err = kubernetes.NewForConfig(c.admin); err != nil {
		return nil, err
	}
	if err := c.startAPIServer(); err != nil {
		return nil, err
	}
	return c, nil
}

// startAPIServer starts kube-apiserver and waits until /readyz answers
// ok: with the machine busy its post-start hooks take tens of seconds.
func (c *cluster) startAPIServer() error {
	logf, err := os.OpenFile(filepath.Join(c.dir, "kube-apiserver.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.bin, c.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	const within = 4 * time.Minute
	api, err := peers.Start(cmd, c.addr, within, func() { logf.Close() })
	if err != nil {
		return fmt.Errorf("kube-apiserver: %w\n%s", err, c.logTail())
	}
	c.api = api

	pool := x509.NewCertPool()
	ca, _ := os.ReadFile(c.pki.CA)
	pool.AppendCertsFromPEM(ca)
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer hc.CloseIdleConnections()
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		req, _ := http.NewRequest("GET", "https://"+c.addr+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+c.admin.BearerToken)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	c.stopAPIServer()
	return fmt.Errorf("kube-apiserver not ready within %v:\n%s", within, c.logTail())
}

func (c *cluster) stopAPIServer() {
	if c.api != nil {
		c.api.Stop()
		c.api = nil
	}
}

func (c *cluster) logTail() string {
	b, _ := os.ReadFile(filepath.Join(c.dir, "kube-apiserver.log"))
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return string(b)
}

// bumpEtcd moves etcd's revision on and compacts it, so that a watch
// resuming from an older resource version finds it gone ("too old
// resource version") and the informer must list again.
func (c *cluster) bumpEtcd(ctx context.Context) error {
	ec, err := clientv3.New(clientv3.Config{Endpoints: []string{c.etcd.Addr}, DialTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer ec.Close()
	var rev int64
	for i := range 3 {
		r, err := ec.Put(ctx, "/hopprobe-e2e/bump", fmt.Sprint(i))
		if err != nil {
			return err
		}
		rev = r.Header.Revision
	}
	_, err = ec.Compact(ctx, rev, clientv3.WithCompactPhysical())
	return err
}

// serviceAccountKubeconfig writes a kubeconfig holding a token of the
// shipped ServiceAccount (hopprobe/hopprobe), and nothing else.
func (c *cluster) serviceAccountKubeconfig(t *testing.T) string {
	t.Helper()
	tr, err := c.cs.CoreV1().ServiceAccounts("hopprobe").CreateToken(t.Context(), "hopprobe",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: new(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("a token for the shipped ServiceAccount: %v", err)
	}
	ca, err := os.ReadFile(c.pki.CA)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: https://%s
    certificate-authority-data: %s
users:
- name: hopprobe
  user:
    token: %s
contexts:
- name: e2e
  context: {cluster: e2e, user: hopprobe}
current-context: e2e
`, c.addr, base64.StdEncoding.EncodeToString(ca), tr.Status.Token)
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
