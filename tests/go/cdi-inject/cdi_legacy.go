//go:build !cncf

// The CDI library's import path up to 0.6 (Debian 12 ships 0.5.2).
package main

import (
	"github.com/container-orchestrated-devices/container-device-interface/pkg/cdi"
	oci "github.com/opencontainers/runtime-spec/specs-go"
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
