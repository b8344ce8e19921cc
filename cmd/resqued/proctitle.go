//go:build cgo

package main

import (
	"os"
	"syscall"

	"github.com/erikdubbelboer/gspt"

	"github.com/resqued/resqued/pkg/supervisor"
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

// makeTitleRoom gives the supervisor room for its whole title. gspt can
// only overwrite the argv and first environment string the process was
// started with (supervisor.EnvTitleRoom), so "resqued supervisor of 2
// workers" started as `COUNT=2 resqued` showed "resqued supervisor of 2
// work". Unless the room is there already, the process execs itself again,
// same pid, same arguments, with the room first in its environment. If
// that exec fails, it carries on with the room it has: a cut title, no
// harm done. It returns only in that case or when the room is there.
func makeTitleRoom() {
	if _, ok := os.LookupEnv(supervisor.EnvTitleRoom); ok {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	_ = syscall.Exec(exe, os.Args, supervisor.TitleRoom(os.Environ()))
}
