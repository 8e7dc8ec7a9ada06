//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/allinx/hopprobe/internal/peers"
	"github.com/allinx/hopprobe/internal/testkit"
)

// probeEnv is the environment of a probe command that reaches the
// cluster with kubeconfig only: no in-cluster variables, no ~/.kube.
func probeEnv(t *testing.T, kubeconfig string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KUBERNETES_") && !strings.HasPrefix(kv, "KUBECONFIG=") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	return append(env, "KUBECONFIG="+kubeconfig, "HOME="+t.TempDir())
}

// runProbe runs the probe binary to its end.
func runProbe(t *testing.T, kubeconfig string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Getenv("HOPPROBE_PROBE"), args...)
	cmd.Env = probeEnv(t, kubeconfig)
	var out, errs strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errs
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errs.String()
	} else if err != nil {
		t.Fatalf("probe %v: %v", args, err)
	}
	return 0, out.String(), errs.String()
}

// server is a running `probe serve`.
type server struct {
	addr string
	log  *testkit.Buffer
}

// startServe runs `probe serve` on a free loopback port until the test ends.
func startServe(t *testing.T, kubeconfig string, args ...string) *server {
	t.Helper()
	addr, err := peers.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return startServeOn(t, kubeconfig, addr, args...)
}

// startServeOn runs `probe serve` listening on addr until the test ends.
func startServeOn(t *testing.T, kubeconfig, addr string, args ...string) *server {
	t.Helper()
	s := &server{addr: addr, log: &testkit.Buffer{}}
	cmd := exec.Command(os.Getenv("HOPPROBE_PROBE"), append([]string{"serve", "--listen", addr}, args...)...)
	cmd.Env = probeEnv(t, kubeconfig)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Error("probe serve did not stop within 10s of SIGTERM")
		}
		if t.Failed() {
			t.Logf("probe serve's log:\n%s", s.log.String())
		}
	})
	s.waitFor(t, "its /metrics", time.Minute, func() bool { _, err := s.get("/metrics"); return err == nil })
	return s
}

func (s *server) get(path string) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + s.addr + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	return string(b), err
}

// metric is the value of the sample whose line starts with series (name
// and labels as exported), and whether there is one.
func (s *server) metric(series string) (float64, bool) {
	body, err := s.get("/metrics")
	if err != nil {
		return 0, false
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
			return v, err == nil
		}
	}
	return 0, false
}

// waitFor polls cond until it holds, or fails the test after within,
// saying what (a string, or a lazy that says what it last saw).
func (s *server) waitFor(t *testing.T, what any, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%v: not within %v", what, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// lazy is a description written when a wait fails, from what the wait
// last saw.
type lazy func() string

func (l lazy) String() string { return l() }

// waitMetric waits until series has a value that ok accepts.
func (s *server) waitMetric(t *testing.T, series string, within time.Duration, ok func(float64) bool) float64 {
	t.Helper()
	var v float64
	var found bool
	s.waitFor(t, lazy(func() string {
		name, _, _ := strings.Cut(series, "{")
		body, _ := s.get("/metrics")
		var same []string
		for line := range strings.Lines(body) {
			if strings.HasPrefix(line, name) {
				same = append(same, line)
			}
		}
		return fmt.Sprintf("%s not as wanted (found %v, value %v); the family:\n%s", series, found, v, strings.Join(same, ""))
	}), within, func() bool {
		v, found = s.metric(series)
		return found && ok(v)
	})
	return v
}

func is(want float64) func(float64) bool { return func(v float64) bool { return v == want } }
