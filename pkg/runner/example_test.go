package runner_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/resqued/resqued/pkg/runner"
)

// exampleHandlers makes a handlers directory holding the given sh
// scripts, by class path ("Mailers/Welcome"). The caller removes it.
func exampleHandlers(scripts map[string]string) (string, error) {
	dir, err := os.MkdirTemp("", "runner-example-")
	if err != nil {
		return "", err
	}
	for name, body := range scripts {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return dir, err
		}
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			return dir, err
		}
	}
	return dir, nil
}

// A class names its executable: "::" (and PHP's "\") separate
// directories.
func ExampleRunner_Resolve() {
	dir, err := exampleHandlers(map[string]string{"Mailers/Welcome": "exit 0"})
	defer os.RemoveAll(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	r, err := runner.New(runner.Config{Dir: dir})
	if err != nil {
		fmt.Println(err)
		return
	}
	path, err := r.Resolve("Mailers::Welcome")
	fmt.Println(filepath.Rel(r.Dir(), path))
	fmt.Println(err)
	_, err = r.Resolve(`Mailers\Goodbye`)
	fmt.Println(errors.Is(err, runner.ErrNoHandler))
	// Output:
	// Mailers/Welcome <nil>
	// <nil>
	// true
}

// Start runs a job's handler: its args arrive on stdin, the job's fields
// in the environment. Wait returns once it has exited.
func ExampleRunner_Start() {
	dir, err := exampleHandlers(map[string]string{
		"Greet": `echo "hello $(cat) from $RESQUE_QUEUE, job $RESQUE_JOB_ID"`,
	})
	defer os.RemoveAll(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	r, err := runner.New(runner.Config{Dir: dir})
	if err != nil {
		fmt.Println(err)
		return
	}
	p, err := r.Start(context.Background(), runner.Job{
		Class: "Greet", Queue: "default", ID: "b7e1", Args: []byte(`["world"]`),
		Stdout: os.Stdout, // instead of the log
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = p.Wait()
	fmt.Println("wait:", err)
	// Output:
	// hello ["world"] from default, job b7e1
	// wait: <nil>
}

// A handler that exits non-zero fails its job: Wait's *ExitError has the
// status and the end of its stderr, which becomes the failure's backtrace.
func ExampleRunner_Run() {
	dir, err := exampleHandlers(map[string]string{
		"Import": `echo "reading $(cat)" >&2; echo "no such file" >&2; exit 3`,
	})
	defer os.RemoveAll(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	r, err := runner.New(runner.Config{Dir: dir})
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = r.Run(context.Background(), runner.Job{Class: "Import", Queue: "imports", Args: []byte(`["data.csv"]`)})
	var ee *runner.ExitError
	if errors.As(err, &ee) {
		fmt.Println(ee.Code, ee.StderrTail)
	}
	fmt.Println(err)
	// Output:
	// 3 [reading ["data.csv"] no such file]
	// handler Import exited with status 3
}
