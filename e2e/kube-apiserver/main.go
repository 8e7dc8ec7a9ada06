// Command kube-apiserver is the real Kubernetes API server, built from the
// Go module proxy for the end-to-end suite (make e2e). It lives in its
// own module so that k8s.io/kubernetes never enters hopprobe's go.mod:
// the staging modules that k8s.io/kubernetes replaces with ./staging/…
// are replaced here with their published releases of the same version.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
