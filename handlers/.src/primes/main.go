// Command primes is the example Go handler for the job class "Primes": the
// primes up to N, by the sieve of Eratosthenes (standard library only).
//
// Build it into the handlers directory (the binary is gitignored):
//
//	go build -o handlers/Primes ./handlers/.src/primes
//
// Job:     {"class":"Primes","args":[30]}
// Result:  {"primes":[2,3,5,7,11,13,17,19,23,29]}
// By hand: echo '[30]' | ./handlers/Primes
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
)

// maxN keeps the result line (56 KB at 100000) under resqued's 64 KiB limit
// for a line on the result descriptor.
const maxN = 100_000

func main() {
	// The result and the failure are one JSON line each on the descriptor
	// resqued names in RESQUE_RESULT_FD (3); on stdout when run by hand.
	out := os.Stdout
	if fd, err := strconv.Atoi(os.Getenv("RESQUE_RESULT_FD")); err == nil {
		out = os.NewFile(uintptr(fd), "result")
	}

	var args []int
	raw, err := io.ReadAll(os.Stdin)
	if err == nil {
		err = json.Unmarshal(raw, &args)
	}
	if err == nil && (len(args) != 1 || args[0] < 0 || args[0] > maxN) {
		err = fmt.Errorf("want one whole number from 0 to %d, got %.100s", maxN, raw)
	}
	if err != nil {
		// Logged; with no "backtrace" below, also the failure's backtrace.
		fmt.Fprintf(os.Stderr, "Primes: args must be [N]: %v\n", err)
		report(out, map[string]string{"exception": "ArgumentError", "error": "args must be [N]: " + err.Error()})
		os.Exit(1)
	}
	report(out, map[string]any{"result": map[string][]int{"primes": sieve(args[0])}})
}

// sieve returns the primes <= n.
func sieve(n int) []int {
	primes := []int{}
	composite := make([]bool, n+1)
	for i := 2; i <= n; i++ {
		if !composite[i] {
			primes = append(primes, i)
			for j := i * i; j <= n; j += i {
				composite[j] = true
			}
		}
	}
	return primes
}

// report writes v to out as one JSON line.
func report(out io.Writer, v any) {
	line, _ := json.Marshal(v)
	fmt.Fprintf(out, "%s\n", line)
}
