package live

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// warnedPlain remembers the hosts already warned about: once a process.
var warnedPlain sync.Map

// maxAdminBody bounds one Admin API answer; a 50-route export is ~30 KB.
const maxAdminBody = 16 << 20

// AdminClient reads the APISIX Admin API. The key goes in the X-API-KEY
// header only, to the host the operator named: a redirect to another
// host is refused (Go strips only its own credential headers when
// following one), proxy variables are ignored unless UseProxy is set,
// and the key is never logged or put into an error.
type AdminClient struct {
	Base, Key string
	// UseProxy honours HTTPS_PROXY/HTTP_PROXY/NO_PROXY.
	UseProxy bool
	Log      *slog.Logger
}

func (a *AdminClient) client(base *url.URL) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	if a.UseProxy {
		tr.Proxy = http.ProxyFromEnvironment
	}
	return &http.Client{Transport: tr, Timeout: 20 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Host != base.Host || req.URL.Scheme != base.Scheme {
				return fmt.Errorf("refused a redirect from %s to %s://%s: the Admin API key goes only to the host named in --admin-url", base.Host, req.URL.Scheme, req.URL.Host)
			}
			if len(via) >= 3 {
				return errors.New("stopped after 3 redirects")
			}
			return nil
		}}
}

// Fetch reads routes, services and upstreams.
func (a *AdminClient) Fetch(ctx context.Context) (*APISIXExport, error) {
	base, err := url.Parse(strings.TrimSuffix(a.Base, "/"))
	if err != nil || base.Host == "" || (base.Scheme != "http" && base.Scheme != "https") {
		return nil, fmt.Errorf("the Admin API address must be http(s)://host[:port], got %q", a.Base)
	}
	if base.User != nil {
		return nil, errors.New("the Admin API address may not carry user information; the key comes from $APISIX_ADMIN_KEY")
	}
	if _, seen := warnedPlain.LoadOrStore(base.Host, true); base.Scheme == "http" && !seen && a.Log != nil {
		a.Log.Warn("the APISIX Admin API is read over plain http: its key crosses the network unencrypted", "host", base.Host)
	}
	c := a.client(base)
	parts := map[string]json.RawMessage{}
	for _, what := range []string{"routes", "services", "upstreams"} {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base.String()+"/apisix/admin/"+what, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("X-API-KEY", a.Key)
		resp, err := c.Do(req)
		if err != nil {
			return nil, fmt.Errorf("GET /apisix/admin/%s: %w", what, err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxAdminBody+1))
		resp.Body.Close()
		switch {
		case err != nil:
			return nil, fmt.Errorf("GET /apisix/admin/%s: %w", what, err)
		case len(body) > maxAdminBody:
			return nil, fmt.Errorf("GET /apisix/admin/%s: the answer is larger than %d MiB", what, maxAdminBody>>20)
		case resp.StatusCode != http.StatusOK:
			return nil, fmt.Errorf("GET /apisix/admin/%s: HTTP %d (is $APISIX_ADMIN_KEY set?)", what, resp.StatusCode)
		}
		parts[what] = body
	}
	all, _ := json.Marshal(parts)
	return ReadAPISIXExport(bytes.NewReader(all))
}
