package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

// help renders resqued's help for args ("--help", "enqueue --help").
func help(t *testing.T, args ...string) string {
	t.Helper()
	app := newApp()
	var out bytes.Buffer
	app.Writer, app.ErrWriter = &out, &out
	if err := app.Run(append([]string{"resqued"}, args...)); err != nil {
		t.Fatalf("resqued %v: %v", args, err)
	}
	return out.String()
}

// TestHelp_UsageNamesEveryCommand: the usage lines at the top of
// resqued --help show how to call every command.
func TestHelp_UsageNamesEveryCommand(t *testing.T) {
	app := newApp()
	for _, c := range app.Commands {
		if !regexp.MustCompile(`(?m)^resqued [a-z|]*\b` + c.Name + `\b`).MatchString(app.UsageText) {
			t.Errorf("UsageText does not name %q:\n%s", c.Name, app.UsageText)
		}
	}
}

// TestHelp_NoDoubledDefault: no flag says its default twice, once by hand
// and once as urfave/cli's "(default: x)".
func TestHelp_NoDoubledDefault(t *testing.T) {
	doubled := regexp.MustCompile(`\(default[^:].*\(default: `)
	pages := [][]string{{"--help"}}
	for _, c := range newApp().Commands {
		pages = append(pages, []string{c.Name, "--help"})
		for _, sub := range c.Subcommands {
			pages = append(pages, []string{c.Name, sub.Name, "--help"})
		}
	}
	for _, args := range pages {
		for _, line := range strings.Split(help(t, args...), "\n") {
			if doubled.MatchString(line) {
				t.Errorf("resqued %s: %q says its default twice", strings.Join(args, " "), strings.TrimSpace(line))
			}
		}
	}
}

// TestHelp_EnqueueFlags: enqueue's help lists the flags enqueue uses,
// not the daemon's logging flags.
func TestHelp_EnqueueFlags(t *testing.T) {
	out := help(t, "enqueue", "--help")
	for _, want := range []string{"--redis", "--namespace", "--queue", "--args", "--track", "--wait", "--stdin", "--in", "--at"} {
		if !strings.Contains(out, want+" ") {
			t.Errorf("enqueue --help lacks %s", want)
		}
	}
	for _, leak := range []string{"--verbose", "--vv", "--log-level", "--log-format", "--handlers", "--queues"} {
		if strings.Contains(out, leak+" ") || strings.Contains(out, leak+",") {
			t.Errorf("enqueue --help lists %s, which enqueue does not use", leak)
		}
	}
}

// TestUnknownCommand_Messages: a mistyped command gets the nearest one.
func TestUnknownCommand_Messages(t *testing.T) {
	cmds := newApp().Commands
	for typed, want := range map[string]string{
		"enqeue":  `no command "enqeue". Did you mean "enqueue"?`,
		"stast":   `no command "stast". Did you mean "stats"?`,
		"handler": `no command "handler". Did you mean "handlers"?`,
		"foo":     `no command "foo"`,
	} {
		err := unknownCommand(cmds, typed)
		ue, ok := err.(*usageError)
		if !ok || ue.msg != want || ue.hint != "resqued --help" {
			t.Errorf("unknownCommand(%q) = %#v, want %q with hint resqued --help", typed, err, want)
		}
	}
}
