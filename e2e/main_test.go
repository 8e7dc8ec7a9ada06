//go:build e2e

// Package e2e runs hopprobe against a real Kubernetes control plane:
// Debian's etcd and kube-apiserver built from the Go module proxy
// (e2e/kube-apiserver; make e2e builds it once and caches it). The suite
// runs in a network namespace it creates for itself, holding only a
// loopback interface: the API server, the stand-in pods and nodes on
// their 10.244/16 and 10.245/16 addresses and the prober all live there,
// and nothing they send can leave it.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"github.com/allinx/hopprobe/probes"
)

const inNetns = "HOPPROBE_E2E_NETNS"

// The namespace's addresses, all on its loopback: pods, nodes, and the
// API server's advertised address (it must not be loopback).
var netnsAddrs = []string{"10.244.0.1/16", "10.245.0.1/16", "10.246.0.1/32"}

func TestMain(m *testing.M) {
	if os.Getenv(inNetns) == "" {
		os.Exit(reexecInNetns())
	}
	if err := setupNetns(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	probes.RegisterKinds() // the suite loads topologies as the programs do
	code := m.Run()
	stopCluster()
	os.Exit(code)
}

// reexecInNetns runs this test binary again in a new network namespace.
func reexecInNetns() int {
	for _, need := range []string{"HOPPROBE_KUBE_APISERVER", "HOPPROBE_PROBE"} {
		if os.Getenv(need) == "" {
			return cannotRun(need + " is not set: run the suite with make e2e, which builds kube-apiserver and probe")
		}
	}
	cmd := exec.Command(os.Args[0], os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), inNetns+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		return cannotRun("cannot create a network namespace for the suite (it needs root or CAP_SYS_ADMIN): " + err.Error())
	}
	return 0
}

// cannotRun skips the suite loudly, and fails it in CI.
func cannotRun(why string) int {
	if os.Getenv("CI") != "" {
		fmt.Fprintln(os.Stderr, "e2e: FAIL:", why)
		return 1
	}
	fmt.Fprintln(os.Stderr, "e2e: SKIP:", why)
	return 0
}

func setupNetns() error {
	run := func(args ...string) error {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %v: %v: %s", args, err, out)
		}
		return nil
	}
	if err := run("link", "set", "lo", "up"); err != nil {
		return err
	}
	for _, a := range netnsAddrs {
		if err := run("addr", "add", a, "dev", "lo"); err != nil {
			return err
		}
	}
	return nil
}
