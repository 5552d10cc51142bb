//go:build !cncf

// The CDI library's import path up to 0.6 (Debian 12 ships 0.5.2).
package main

import "github.com/container-orchestrated-devices/container-device-interface/pkg/cdi"

// readSpec loads and validates one spec file as the library's cache does.
func readSpec(path string) error {
	_, err := cdi.ReadSpec(path, 0)
	return err
}
