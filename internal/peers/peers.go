// Package peers starts real data-store servers on free loopback ports
// for tests and the demo: redis-server, postgres and etcd from the
// machine's packages, Kafka in-process (kfake). Each start function
// returns ErrMissing when the server binary is not installed, so that a
// test can skip loudly instead of failing for the wrong reason.
package peers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kfake"
)

// ErrMissing means the server's binary is not on this machine.
var ErrMissing = errors.New("server binary not installed (.ci/run installs it)")

// Server is a running peer.
type Server struct {
	Addr string
	stop func()
}

// Stop ends the server and waits for it.
func (s *Server) Stop() {
	if s.stop != nil {
		s.stop()
		s.stop = nil
	}
}

// FreePort returns a loopback address nobody listens on.
func FreePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// start runs cmd and waits until addr accepts connections.
func start(cmd *exec.Cmd, addr string, cleanup func()) (*Server, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// Own process group, killed with the test binary: nothing outlives a test.
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		cleanup()
		return nil, err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop := func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		cleanup()
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return &Server{Addr: addr, stop: stop}, nil
		}
		select {
		case <-done:
			cleanup()
			return nil, fmt.Errorf("%s exited before it listened on %s", cmd.Path, addr)
		case <-time.After(50 * time.Millisecond):
		}
	}
	stop()
	return nil, fmt.Errorf("%s did not listen on %s within 30s", cmd.Path, addr)
}

func lookPath(names ...string) (string, error) {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w", names[0], ErrMissing)
}

// orFree returns addr, or a free loopback address when addr is empty.
func orFree(addr string) (string, error) {
	if addr != "" {
		return addr, nil
	}
	return FreePort()
}

// Redis starts redis-server on addr ("" = a free port) with requirepass;
// replicaOf makes it a replica.
func Redis(addr, password, replicaOf string) (*Server, error) {
	bin, err := lookPath("redis-server")
	if err != nil {
		return nil, err
	}
	if addr, err = orFree(addr); err != nil {
		return nil, err
	}
	args := []string{"--port", port(addr), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--requirepass", password}
	if replicaOf != "" {
		h, p, _ := net.SplitHostPort(replicaOf)
		args = append(args, "--replicaof", h, p, "--masterauth", password)
	}
	return start(exec.Command(bin, args...), addr, func() {})
}

// Etcd starts a single-member etcd serving clients on addr ("" = free).
func Etcd(client string) (*Server, error) {
	bin, err := lookPath("etcd")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "hopprobe-etcd-")
	if err != nil {
		return nil, err
	}
	if client, err = orFree(client); err != nil {
		return nil, err
	}
	peer, _ := FreePort()
	cmd := exec.Command(bin, "--name", "probe", "--data-dir", dir,
		"--listen-client-urls", "http://"+client, "--advertise-client-urls", "http://"+client,
		"--listen-peer-urls", "http://"+peer, "--initial-advertise-peer-urls", "http://"+peer,
		"--initial-cluster", "probe=http://"+peer, "--log-level", "error")
	return start(cmd, client, func() { os.RemoveAll(dir) })
}

// Postgres initialises a cluster with user/password (scram) in a temp dir
// and starts it. As root it runs as the postgres user, since PostgreSQL
// refuses to run as root.
func Postgres(addr, username, password string) (*Server, error) {
	initdb, err := lookPath("initdb", "/usr/lib/postgresql/15/bin/initdb")
	if err != nil {
		return nil, err
	}
	postgres, err := lookPath("postgres", "/usr/lib/postgresql/15/bin/postgres")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "hopprobe-pg-")
	if err != nil {
		return nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	pwfile := filepath.Join(dir, "pw")
	data := filepath.Join(dir, "data")
	if err := os.WriteFile(pwfile, []byte(password+"\n"), 0o600); err != nil {
		cleanup()
		return nil, err
	}
	wrap := func(bin string, args ...string) *exec.Cmd { return exec.Command(bin, args...) }
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			cleanup()
			return nil, fmt.Errorf("running as root needs a postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, p := range []string{dir, pwfile} {
			if err := os.Chown(p, uid, gid); err != nil {
				cleanup()
				return nil, err
			}
		}
		wrap = func(bin string, args ...string) *exec.Cmd {
			c := exec.Command(bin, args...)
			c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
			return c
		}
	}
	init := wrap(initdb, "-D", data, "-U", username, "--pwfile", pwfile, "-A", "scram-sha-256", "--no-sync", "-E", "UTF8")
	if out, err := init.CombinedOutput(); err != nil {
		cleanup()
		return nil, fmt.Errorf("initdb failed: %v\n%s", err, out)
	}
	if addr, err = orFree(addr); err != nil {
		cleanup()
		return nil, err
	}
	cmd := wrap(postgres, "-D", data, "-p", port(addr), "-k", dir, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off")
	srv, err := start(cmd, addr, cleanup)
	if err != nil {
		return nil, err
	}
	// The port opens before recovery ends ("the database system is
	// starting up"): wait for a real session.
	cc, err := pgx.ParseConfig("host=127.0.0.1 port=" + port(addr) + " dbname=postgres sslmode=disable")
	if err != nil {
		srv.Stop()
		return nil, err
	}
	cc.User, cc.Password = username, password
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.ConnectConfig(ctx, cc)
		if err == nil {
			_ = conn.Close(ctx)
			cancel()
			return srv, nil
		}
		cancel()
		if time.Now().After(deadline) {
			srv.Stop()
			return nil, fmt.Errorf("postgres on %s never accepted a session: %w", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Kafka starts an in-process Kafka-protocol broker on addr ("" = free)
// with topics seeded.
func Kafka(addr string, topics ...string) (*Server, error) {
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(1, topics...)}
	if addr != "" {
		p, err := strconv.Atoi(port(addr))
		if err != nil {
			return nil, fmt.Errorf("kafka address %q: %w", addr, err)
		}
		opts = append(opts, kfake.Ports(p))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, err
	}
	return &Server{Addr: c.ListenAddrs()[0], stop: c.Close}, nil
}

// Hang accepts connections and never answers: a peer that is up but stuck.
func Hang() (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	var conns []net.Conn
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				for _, c := range conns {
					c.Close()
				}
				return
			}
			conns = append(conns, c)
		}
	}()
	return &Server{Addr: ln.Addr().String(), stop: func() { ln.Close(); <-done }}, nil
}
