//go:build cgo

package main

import (
	"os"

	"github.com/erikdubbelboer/gspt"
)

// titleSetter returns a function that sets the process title in Ruby
// Resque's form, "<prefix>resque-<version>: <what>", so that Resque's own
// live-worker check (ps ... | grep resque-[0-9]) recognises the process.
// RESQUE_PROCLINE_PREFIX sets the prefix; it defaults to "resqued ".
func titleSetter() func(string) {
	prefix, ok := os.LookupEnv("RESQUE_PROCLINE_PREFIX")
	if !ok {
		prefix = "resqued "
	}
	return func(what string) { gspt.SetProcTitle(prefix + "resque-" + titleVersion() + ": " + what) }
}

// rawTitleSetter sets the title as given: the supervisor's must not look
// like a Resque worker's.
func rawTitleSetter() func(string) { return gspt.SetProcTitle }
