// Command probe walks the documented ALLINX paths hop by hop: once from
// the command line (probe --path HOST/PATH) or continuously (probe serve).
package main

import (
	"context"
	"os"

	"github.com/allinx/hopprobe/internal/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
