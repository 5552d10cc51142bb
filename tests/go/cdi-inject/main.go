// Command cdi-inject injects CDI devices into an OCI runtime config with the reference Go
// library's cache (the code path podman, CRI-O and containerd use) and prints the result as JSON.
//
// Usage: cdi-inject -spec-dir DIR [-spec-dir DIR]... -config FILE DEVICE...
//
// Build offline: GO111MODULE=off GOPATH=/usr/share/gocode go build -o DIR/cdi-inject . (add
// -tags cncf for library releases 0.7 and later, published under tags.cncf.io).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io/ioutil"
	"os"
	"strings"

	oci "github.com/opencontainers/runtime-spec/specs-go"
)

// specCache is the library's *cdi.Cache, made by newCache from the import path the build tags
// choose (cdi_cncf.go, cdi_legacy.go).
type specCache interface {
	InjectDevices(spec *oci.Spec, devices ...string) ([]string, error)
}

type dirList []string

func (d *dirList) String() string     { return strings.Join(*d, ",") }
func (d *dirList) Set(v string) error { *d = append(*d, v); return nil }

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "cdi-inject: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	var dirs dirList
	flag.Var(&dirs, "spec-dir", "CDI spec directory (repeatable, lowest priority first)")
	configPath := flag.String("config", "", "OCI runtime config to inject into")
	flag.Parse()

	data, err := ioutil.ReadFile(*configPath)
	if err != nil {
		fail("%v", err)
	}
	var spec oci.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		fail("cannot parse %s: %v", *configPath, err)
	}
	cache, err := newCache(dirs)
	if err != nil {
		fail("%v", err)
	}
	if _, err := cache.InjectDevices(&spec, flag.Args()...); err != nil {
		fail("%v", err)
	}
	out, err := json.MarshalIndent(&spec, "", "  ")
	if err != nil {
		fail("%v", err)
	}
	os.Stdout.Write(append(out, '\n'))
}
