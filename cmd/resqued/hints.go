package main

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"
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

// unknownCommand is what the daemon says about an argument it does not
// take, which is nearly always a mistyped command: urfave/cli's nearest
// command name when it is close enough to be what was meant.
func unknownCommand(commands []*cli.Command, typed string) error {
	msg := fmt.Sprintf("no command %q", typed)
	var name string
	if cli.SuggestCommand != nil {
		_, _ = fmt.Sscanf(cli.SuggestCommand(commands, typed), cli.SuggestDidYouMeanTemplate, &name)
	}
	// The library always names some command; "foo" is not a typo of one.
	if name != "" && len(name) > 1 && editDistance(name, typed) <= max(2, len(name)/3) {
		msg += fmt.Sprintf(". Did you mean %q?", name)
	}
	return &usageError{msg: msg, hint: "resqued --help"}
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
