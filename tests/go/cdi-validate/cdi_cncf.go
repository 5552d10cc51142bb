//go:build cncf

// The CDI library's import path from 0.7 on (Debian trixie ships 0.8.0, sid 1.0.1).
package main

import "tags.cncf.io/container-device-interface/pkg/cdi"

// readSpec loads and validates one spec file as the library's cache does.
func readSpec(path string) error {
	_, err := cdi.ReadSpec(path, 0)
	return err
}
