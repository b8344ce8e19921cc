package main

import (
	"strings"
)

// titleVersion is Version reduced to what Resque's titles carry: it must
// start with a digit ("0.1.0"), which Resque's ps pattern resque-[0-9]
// relies on.
func titleVersion() string {
	v := strings.TrimPrefix(Version, "v")
	if v == "" || v[0] < '0' || v[0] > '9' {
		return "0.0.0-" + v
	}
	return v
}
