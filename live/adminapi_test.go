package live_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/allinx/hopprobe/live"
)

// The key goes to the named host only: a redirect elsewhere is refused
// and the other host never sees the key; plain http is warned about.
func TestAdminClientKeepsTheKeyOnItsHost(t *testing.T) {
	var leaked atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-API-KEY") != "" {
			leaked.Add(1)
		}
		w.Write([]byte(`{"list":[]}`))
	}))
	defer other.Close()
	admin := httptest.NewServer(http.RedirectHandler(other.URL+"/apisix/admin/routes", http.StatusFound))
	defer admin.Close()
	var logs bytes.Buffer
	a := &live.AdminClient{Base: admin.URL, Key: "admin-key-value-1", Log: slog.New(slog.NewTextHandler(&logs, nil))}
	_, err := a.Fetch(t.Context())
	if err == nil || !strings.Contains(err.Error(), "refused a redirect") {
		t.Fatalf("error %v", err)
	}
	if leaked.Load() != 0 {
		t.Fatal("the key reached another host")
	}
	if strings.Contains(err.Error()+logs.String(), "admin-key-value-1") {
		t.Fatal("the key was printed")
	}
	if !strings.Contains(logs.String(), "plain http") {
		t.Fatalf("no warning about plain http: %q", logs.String())
	}
	a.Base = "http://user:pw@" + strings.TrimPrefix(admin.URL, "http://")
	if _, err := a.Fetch(t.Context()); err == nil || strings.Contains(err.Error(), "pw") {
		t.Fatalf("user information accepted or echoed: %v", err)
	}
}
