package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// misplacedFlags returns one warning per argument after the class that
// looks like one of the command's own flags ("resqued enqueue Echo
// --queue foo" sends ["--queue","foo"] to the job). Flags end at the
// class, so such an argument goes to the job; it may be meant, so this
// only warns. Arguments after a "--" are the job's on purpose and pass
// without a warning. invocation is how the command is typed.
func misplacedFlags(flags []cli.Flag, invocation, class string, args []string) []string {
	takesValue := map[string]bool{}
	for _, f := range flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			takesValue[n] = !isBool
		}
	}
	var found, moved, kept []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			kept = append(kept, args[i:]...)
			break
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		value, isFlag := takesValue[name]
		if !strings.HasPrefix(a, "-") || a == "-" || !isFlag {
			kept = append(kept, a)
			continue
		}
		found = append(found, a)
		moved = append(moved, shellQuote(a))
		if value && !hasValue && i+1 < len(args) {
			i++
			moved = append(moved, shellQuote(args[i]))
		}
	}
	if len(found) == 0 {
		return nil
	}
	fix := strings.Join(append(append(append([]string{invocation}, moved...), shellQuote(class)), quoteAll(kept)...), " ")
	var out []string
	for _, f := range found {
		out = append(out, fmt.Sprintf("warning: %q after the class is passed to the job as an argument; put %s's flags before the class: %s",
			f, invocation[strings.LastIndexByte(invocation, ' ')+1:], fix))
	}
	return out
}

func quoteAll(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = shellQuote(a)
	}
	return out
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.,/:=@%+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
