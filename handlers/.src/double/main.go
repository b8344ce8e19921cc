// Command double is the example persistent Go handler for the job class
// "Double": twice a number. One process serves many jobs: each job is one
// JSON line on stdin, and each answer one "done" line on the descriptor in
// RESQUE_RESULT_FD (3). Standard library only.
//
// Build it into the handlers directory (the binary is gitignored); the
// ".persistent" in the name is what makes resqued keep it running:
//
//	go build -o handlers/Double.persistent ./handlers/.src/double
//
// Job:     {"class":"Double","args":[21]}
// Result:  {"double":42}
// By hand: echo '{"args":[21]}' | ./handlers/Double.persistent
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strconv"
)

func main() {
	// An *os.File is unbuffered: each Encode is one write, flushed at once.
	out := os.Stdout
	if fd, err := strconv.Atoi(os.Getenv("RESQUE_RESULT_FD")); err == nil {
		out = os.NewFile(uintptr(fd), "result")
	}
	enc := json.NewEncoder(out) // Encode adds the newline

	in := bufio.NewScanner(os.Stdin)
	in.Buffer(nil, 1<<30) // a line holds a whole job: do not stop at 64 KiB
	for in.Scan() {       // one job per line; EOF means exit
		n, err := double(in.Bytes())
		if err == nil {
			err = enc.Encode(map[string]any{"done": "ok", "result": map[string]float64{"double": n}})
		}
		if err != nil { // the job fails, the process carries on
			fmt.Fprintf(os.Stderr, "Double: %v\n", err)
			enc.Encode(map[string]string{"done": "failed", "exception": "ArgumentError", "error": err.Error()})
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintf(os.Stderr, "Double: read stdin: %v\n", err)
		os.Exit(1)
	}
}

// double returns twice the one number in the job line's args.
func double(line []byte) (float64, error) {
	var job struct{ Args []float64 }
	err := json.Unmarshal(line, &job)
	if err == nil && len(job.Args) != 1 {
		err = fmt.Errorf("got %d values", len(job.Args))
	}
	if err != nil {
		return 0, fmt.Errorf("args must be [number]: %w", err)
	}
	if d := 2 * job.Args[0]; !math.IsInf(d, 0) {
		return d, nil
	}
	return 0, fmt.Errorf("%g doubled is too large", job.Args[0])
}
