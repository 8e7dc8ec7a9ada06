// Package benchkit holds what the long benchmarks that run whole
// deployments share (cmd/detectbench, cmd/sitebench): a network and mount
// namespace of their own, server processes with their CPU and memory,
// Prometheus queries, the webhook Alertmanager notifies, waiting.
package benchkit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/allinx/hopprobe/deploy/alertmanager"
	"github.com/allinx/hopprobe/internal/peers"
)

// reexec runs this program again in new network and mount namespaces.
// Inside says whether this process is the bench's copy in its own
// namespaces (InNamespace started it).
func Inside(env string) bool { return os.Getenv(env) != "" }

// InNamespace runs this program again in new network and mount
// namespaces, with env set so that the copy knows (Inside), and returns
// its exit code: the bench's servers, drop rules and resolver touch
// nothing on the host. It needs root.
func InNamespace(env, name string) int {
	if os.Geteuid() != 0 {
		fmt.Fprintf(os.Stderr, "%s needs root: it runs in network and mount namespaces of its own (unshare) and sets nftables rules there\n", name)
		return 2
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cmd := exec.Command("unshare", append([]string{"--net", "--mount", "--", self}, os.Args[1:]...)...)
	cmd.Env = append(os.Environ(), env+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// Sh runs a command; its output is the error's when it fails.
func Sh(name string, args ...string) error {
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// Proc is a server process of the bench.
type Proc struct {
	name string
	cmd  *exec.Cmd
	Log  string // its output
}

// StartProc starts args[0] with env added, its output in dir/name.log.
func StartProc(ctx context.Context, dir, name string, env []string, args ...string) (*Proc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	go func() { cmd.Wait(); f.Close() }()
	return &Proc{name: name, cmd: cmd, Log: logPath}, nil
}

// Stop asks the process to end (SIGTERM).
func (p *Proc) Stop() {
	if p.cmd.Process != nil {
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
}

// CPU is the process's user and system CPU time so far.
func (p *Proc) CPU() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) start at ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

// ProbesTotal sums hopprobe_hop_probes_total on a prober's /metrics.
func ProbesTotal(listen string) float64 {
	return MetricSum("http://"+listen+"/metrics", "hopprobe_hop_probes_total")
}

// MetricSum adds up every sample of the metric name on the /metrics
// page at url; 0 when it cannot be read.
func MetricSum(url, name string) float64 {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, name+"{") || strings.HasPrefix(l, name+" ") {
			if v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64); err == nil {
				sum += v
			}
		}
	}
	return sum
}

// PromAPI asks Prometheus at Base (http://host:port) instant queries.
type PromAPI struct{ Base string }

// Value is the first sample's value, 0 when there is none.
func (p *PromAPI) Value(q string) float64 {
	resp, err := http.Get(p.Base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&r) != nil || len(r.Data.Result) == 0 {
		return 0
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	v, _ := strconv.ParseFloat(s, 64)
	return v
}

// Receiver is the webhook Alertmanager notifies.
type Receiver struct {
	mu    sync.Mutex
	all   []Note
	state map[string]string // group key → status of its last notification
}

// Note is one notification.
type Note struct {
	At        time.Time
	Receiver  string
	Status    string
	Alertname string
	Hop       string
	Page      bool // a pager notification for a group that was not firing
}

func (n Note) String() string {
	return n.At.Format("15:04:05") + " " + n.Status + " " + n.Alertname + " " + n.Hop
}

func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var n struct {
		Receiver     string            `json:"receiver"`
		Status       string            `json:"status"`
		GroupKey     string            `json:"groupKey"`
		CommonLabels map[string]string `json:"commonLabels"`
	}
	if err := json.NewDecoder(io.LimitReader(req.Body, 1<<20)).Decode(&n); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state == nil {
		r.state = map[string]string{}
	}
	// A notification that updates a group already firing (another path
	// through the same hop joined it) is the same page to a pager, which
	// deduplicates on the group key; a group that was not firing pages.
	page := n.Receiver == "pager" && n.Status == "firing" && r.state[n.GroupKey] != "firing"
	r.state[n.GroupKey] = n.Status
	r.all = append(r.all, Note{At: time.Now(), Receiver: n.Receiver, Status: n.Status, Alertname: n.CommonLabels["alertname"], Hop: n.CommonLabels["hop"], Page: page})
}

// PagesSince are the pages from t on.
func (r *Receiver) PagesSince(t time.Time) []Note {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Note
	for _, n := range r.all {
		if n.Page && !n.At.Before(t) {
			out = append(out, n)
		}
	}
	return out
}

// FirstPage is when the first page for hop after t came (zero: none).
func (r *Receiver) FirstPage(t time.Time, hop string) time.Time {
	for _, n := range r.PagesSince(t) {
		if n.Hop == hop {
			return n.At
		}
	}
	return time.Time{}
}

// Resolved is when the pager was first told that hop's page resolved
// after t (zero: not yet).
func (r *Receiver) Resolved(t time.Time, hop string) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.all {
		if n.Receiver == "pager" && n.Status == "resolved" && n.Hop == hop && !n.At.Before(t) {
			return n.At
		}
	}
	return time.Time{}
}

// WaitUntil polls ok every half second, at most limit.
func WaitUntil(ctx context.Context, limit time.Duration, ok func() bool) error {
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", limit)
		}
		if err := Sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// Sleep waits d or until ctx ends.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Median of ds, rounded to the second.
func Median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2].Round(time.Second)
}

// Worst of ds, rounded to the second.
func Worst(ds []time.Duration) time.Duration { return slices.Max(ds).Round(time.Second) }

// All are every notification so far.
func (r *Receiver) All() []Note {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.all)
}

// RSS is the process's resident memory now, in bytes (0 once it ended).
func (p *Proc) RSS() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// Tools are what a bench runs: Debian's Prometheus and Alertmanager,
// the probe binary, and a scratch directory of its own.
type Tools struct{ Prometheus, Alertmanager, Probe, Dir string }

// Prepare brings the namespace's loopback up and finds the tools; done
// removes Dir.
func Prepare(name, probe string) (t *Tools, done func(), err error) {
	if err := Sh("ip", "link", "set", "lo", "up"); err != nil {
		return nil, nil, err
	}
	t = &Tools{}
	if t.Prometheus, err = exec.LookPath("prometheus"); err != nil {
		return nil, nil, errors.New("prometheus not installed (apt-get install prometheus)")
	}
	if t.Alertmanager, err = exec.LookPath("prometheus-alertmanager"); err != nil {
		return nil, nil, errors.New("prometheus-alertmanager not installed (apt-get install prometheus-alertmanager)")
	}
	if t.Probe, err = filepath.Abs(probe); err != nil {
		return nil, nil, err
	}
	if t.Dir, err = os.MkdirTemp("", name+"-"); err != nil {
		return nil, nil, err
	}
	return t, func() { os.RemoveAll(t.Dir) }, nil
}

// Alerting starts Alertmanager with the shipped route and inhibition
// (deploy/alertmanager), its pager and ticket receivers both the webhook
// hook, which this process serves. It returns Alertmanager's address
// and what stops the webhook.
func Alerting(t *Tools, hook *Receiver, start func(name string, env []string, args ...string) (*Proc, error)) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: hook, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	stop := func() { srv.Close() }
	cfg, err := alertmanager.Config("http://"+ln.Addr().String()+"/", nil)
	if err == nil {
		err = os.WriteFile(filepath.Join(t.Dir, "am.yaml"), cfg, 0o644)
	}
	listen, _ := peers.FreePort()
	if err == nil {
		_, err = start("alertmanager", nil, t.Alertmanager, "--config.file", filepath.Join(t.Dir, "am.yaml"), "--storage.path", filepath.Join(t.Dir, "am"),
			"--web.listen-address", listen, "--cluster.listen-address=")
	}
	if err != nil {
		stop()
		return "", nil, err
	}
	return listen, stop, nil
}
