// Command resqued runs Resque jobs as executables in any language.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = "0.1.0-dev"

func main() {
	os.Exit(exitCode(newApp().RunContext(context.Background(), os.Args)))
}

// newApp builds the command line: the daemon at the top, one command per
// file.
func newApp() *cli.App {
	// -v means verbose, as Resque users expect; the version is --version.
	cli.VersionFlag = &cli.BoolFlag{Name: "version", Usage: "print the version"}
	return &cli.App{
		Name:  "resqued",
		Usage: "run Resque jobs as handler executables written in any language",
		UsageText: "resqued --handlers DIR --queues LIST [options]\nresqued enqueue [--queue Q] [--track|--wait] [--in DELAY|--at TIME] CLASS [ARG...]\n" +
			"resqued try [--handlers DIR] CLASS [ARG...]\nresqued handlers [--handlers DIR] [--json]\nresqued status TOKEN\nresqued cancel ID|--worker WORKER_ID\n" +
			"resqued stats|queues|workers [--json]\nresqued queue pause|resume Q...\nresqued queue list [--json]\nresqued failed list|retry|remove|clear\nresqued output [--stream stdout|stderr] ID\nresqued delayed list [--json]\nresqued web [--listen ADDR]",
		Version:        Version,
		Flags:          runFlags(),
		Action:         runAction,
		Commands:       []*cli.Command{enqueueCommand(), statusCommand(), cancelCommand(), tryCommand(), handlersCommand(), statsCommand(), queuesCommand(), queueCommand(), workersCommand(), failedCommand(), outputCommand(), delayedCommand(), webCommand()},
		ExitErrHandler: func(*cli.Context, error) {},
	}
}

// usageError is a mistake in how resqued was called: exit status 2, with a
// hint on what to type instead.
type usageError struct{ msg, hint string }

func (e *usageError) Error() string { return e.msg }

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if msg := err.Error(); msg != "" { // cli.Exit("", code) has said all already
		fmt.Fprintf(os.Stderr, "resqued: %s\n", msg)
	}
	var ue *usageError
	if errors.As(err, &ue) {
		if ue.hint != "" {
			fmt.Fprintf(os.Stderr, "Try: %s\n", ue.hint)
		}
		return 2
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	return 1
}
