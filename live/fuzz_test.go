package live_test

import (
	"bytes"
	"testing"

	"github.com/allinx/hopprobe/internal/testkit"
	"github.com/allinx/hopprobe/live"
)

// FuzzReadKubeList: no kubectl export, however mangled, panics the
// reader, the importer or the drift check. Seeds:
// testdata/fuzz/FuzzReadKubeList.
func FuzzReadKubeList(f *testing.F) {
	cfg := testkit.Allinx(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, err := live.ReadKubeList(bytes.NewReader(data))
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a reason")
			}
			return
		}
		live.ImportKube(inv, nil)
		live.KubeDrift(cfg, inv)
	})
}

// FuzzReadAPISIXExport: no Admin API export, however mangled, panics the
// reader, the route resolution or the route drift check. Seeds:
// testdata/fuzz/FuzzReadAPISIXExport.
func FuzzReadAPISIXExport(f *testing.F) {
	cfg := testkit.Allinx(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := live.ReadAPISIXExport(bytes.NewReader(data))
		if err != nil {
			return
		}
		routes, err := e.Resolve()
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a reason")
			}
			return
		}
		live.RouteDrift(cfg, routes)
	})
}
