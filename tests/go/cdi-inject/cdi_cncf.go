//go:build cncf

// The CDI library's import path from 0.7 on (Debian trixie ships 0.8.0, sid 1.0.1).
package main

import (
	oci "github.com/opencontainers/runtime-spec/specs-go"
	"tags.cncf.io/container-device-interface/pkg/cdi"
)

// injectDevices injects devices into spec with a cache over dirs, as engines do.
func injectDevices(dirs []string, spec *oci.Spec, devices []string) error {
	cache, err := cdi.NewCache(cdi.WithSpecDirs(dirs...), cdi.WithAutoRefresh(false))
	if err != nil {
		return err
	}
	_, err = cache.InjectDevices(spec, devices...)
	return err
}
