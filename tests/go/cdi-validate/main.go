// Command cdi-validate judges CDI spec files with the reference Go library, exactly as its cache
// loads them (ReadSpec: strict parse, then validation), and prints one verdict line per file:
// "<path>\tvalid" or "<path>\tinvalid\t<reason>". A panic of the library counts as invalid.
//
// Build offline: GO111MODULE=off GOPATH=/usr/share/gocode go build -o DIR/cdi-validate . (add
// -tags cncf for library releases 0.7 and later, published under tags.cncf.io).
package main

import (
	"fmt"
	"os"
	"strings"
)

func judge(path string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("library panic: %v", r)
		}
	}()
	return readSpec(path)
}

func main() {
	for _, path := range os.Args[1:] {
		if err := judge(path); err != nil {
			reason := strings.ReplaceAll(err.Error(), "\n", " ")
			fmt.Printf("%s\tinvalid\t%s\n", path, reason)
		} else {
			fmt.Printf("%s\tvalid\n", path)
		}
	}
}
