package main

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
)

// handlersDirError is what resqued, try and handlers say when the
// handlers directory is not usable: where they looked, as an absolute
// path, and how to point them elsewhere. The hint never repeats the
// default that just failed. prefix is the command ("try: ", or "" for
// the daemon); invocation is how the command is typed ("resqued try").
func handlersDirError(prefix, invocation, dir string, err error) error {
	abs, aerr := filepath.Abs(dir)
	if aerr != nil {
		abs = dir
	}
	msg := prefix + err.Error()
	switch {
	case errors.Is(err, fs.ErrNotExist):
		msg = fmt.Sprintf("%sno handlers directory at %s (--handlers %s)", prefix, abs, dir)
	case strings.HasSuffix(err.Error(), "not a directory"):
		msg = fmt.Sprintf("%s%s is not a directory (--handlers %s)", prefix, abs, dir)
	case !strings.HasPrefix(err.Error(), "handlers directory"):
		return &usageError{msg: msg}
	}
	return &usageError{msg: msg, hint: invocation + " --handlers DIR (or RESQUED_HANDLERS=DIR), DIR holding one executable per job class"}
}
