package config_test

import (
	"errors"
	"testing"

	"github.com/allinx/hopprobe/config"
	"github.com/allinx/hopprobe/targets"
)

// FuzzParse: no topology file, however broken, panics the loader or the
// path expansion; a rejected file is explained by errors that name the
// file and say what is wrong. Seeds: testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Add([]byte("routes:\n  - hosts: [a.test]\n    path: /*\n    service: ns/missing:80\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := config.Parse("fuzz.yaml", data)
		if err != nil {
			var es config.Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("error is not a list of located problems: %T %v", err, err)
			}
			for _, e := range es {
				if e.File != "fuzz.yaml" || e.Msg == "" {
					t.Fatalf("error without file or reason: %+v", e)
				}
			}
			return
		}
		for _, v := range []string{config.VantageCluster, config.VantageInternal, config.VantageExternal} {
			if _, err := targets.Expand(cfg, v); err != nil && err.Error() == "" {
				t.Fatalf("expansion failed without a reason")
			}
		}
	})
}
