//go:build cncf

// The CDI library's import path from 0.7 on (Debian trixie ships 0.8.0, sid 1.0.1).
package main

import "tags.cncf.io/container-device-interface/pkg/cdi"

// newCache makes the library's cache over dirs, as engines do.
func newCache(dirs []string) (specCache, error) {
	return cdi.NewCache(cdi.WithSpecDirs(dirs...), cdi.WithAutoRefresh(false))
}
