// Command dashboards writes the shipped Grafana dashboards, built in Go by
// package deploy/grafana, to deploy/grafana/dashboards (or the directory
// given as its one argument). Run it through `make dashboards` after
// changing a panel; the deploy/grafana test fails until the files match.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/allinx/hopprobe/deploy/grafana"
)

func main() {
	dir := "deploy/grafana/dashboards"
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	ds, err := grafana.Dashboards()
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	for _, d := range ds {
		file := filepath.Join(dir, d.File)
		if err := os.WriteFile(file, d.JSON, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			os.Exit(1)
		}
		fmt.Println("wrote", file)
	}
}
