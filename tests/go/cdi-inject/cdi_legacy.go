//go:build !cncf

// The CDI library's import path up to 0.6 (Debian 12 ships 0.5.2).
package main

import "github.com/container-orchestrated-devices/container-device-interface/pkg/cdi"

// newCache makes the library's cache over dirs, as engines do.
func newCache(dirs []string) (specCache, error) {
	return cdi.NewCache(cdi.WithSpecDirs(dirs...), cdi.WithAutoRefresh(false))
}
