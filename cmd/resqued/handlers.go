package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/resqued/resqued/pkg/runner"
)

func handlersCommand() *cli.Command {
	return &cli.Command{
		Name:  "handlers",
		Usage: "list the job classes the handlers directory provides, and what is wrong with any file in it",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "handlers", EnvVars: []string{"RESQUED_HANDLERS"}, Value: "./handlers", Usage: "`DIR` holding one executable per job class"},
			&cli.BoolFlag{Name: "follow-symlinks", EnvVars: []string{"RESQUED_FOLLOW_SYMLINKS"}, Usage: "allow handler symlinks that point outside the handlers directory"},
			&cli.BoolFlag{Name: "json", Usage: "print a JSON array"},
		},
		Action: handlersAction,
	}
}

// handlersAction lists the inventory; it exits 1 when any file has a
// problem, so it can guard a deploy.
func handlersAction(c *cli.Context) error {
	r, err := runner.New(runner.Config{Dir: c.String("handlers"), FollowSymlinks: c.Bool("follow-symlinks")})
	if err != nil {
		return handlersDirError("handlers: ", "resqued handlers", c.String("handlers"), err)
	}
	entries, err := r.Inventory()
	if err != nil {
		return fmt.Errorf("list handlers: %w", err)
	}
	problems := 0
	for _, e := range entries {
		if e.Problem != "" {
			problems++
		}
	}
	if c.Bool("json") {
		if entries == nil {
			entries = []runner.Entry{}
		}
		b, _ := json.MarshalIndent(entries, "", "  ")
		fmt.Fprintln(c.App.Writer, string(b))
	} else {
		tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CLASS\tMODE\tFILE\tPROBLEM")
		for _, e := range entries {
			class := e.Class
			if class == "" {
				class = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", class, e.Mode, e.Path, e.Problem)
		}
		tw.Flush()
	}
	if problems > 0 {
		return cli.Exit(fmt.Sprintf("%d of %d files have problems", problems, len(entries)), 1)
	}
	return nil
}
