package cli_test

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/allinx/hopprobe/internal/peers"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := peers.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

func get(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
