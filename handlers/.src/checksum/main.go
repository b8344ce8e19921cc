// Command checksum is the example Go handler for the job class "Checksum".
//
// Build it into the handlers directory (the binary is gitignored):
//
//	go build -o handlers/Checksum ./handlers/.src/checksum
//
// Job:
//
//	{"class":"Checksum","args":["hello","world"]}
//
// It reads the args array from stdin, which must hold strings only, and
// prints one JSON line with the SHA-256 of each string (of its UTF-8 bytes)
// to stdout:
//
//	{"sha256":["2cf24dba...","486ea462..."]}
//
// On bad input it writes the reason to stderr and exits 1, so the job fails
// with Resqued::HandlerFailed and the reason is the failure's backtrace.
//
// By hand:
//
//	echo '["hello"]' | RESQUE_CLASS=Checksum ./handlers/Checksum
//
// The source lives under handlers/.src: entries whose name starts with a
// dot are never handlers (no class segment may start with one), so
// neither the daemon nor `resqued handlers` mistakes it for a job class.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
)

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "Checksum: %v\n", err)
		os.Exit(1)
	}
}

func run(stdin io.Reader, stdout io.Writer) error {
	raw, err := io.ReadAll(stdin)
	if err != nil {
		return fmt.Errorf("read args: %w", err)
	}
	var args []string
	if err := json.Unmarshal(raw, &args); err != nil {
		return fmt.Errorf(`args must be a JSON array of strings, like ["hello"]: %w`, err)
	}
	sums := make([]string, len(args))
	for i, s := range args {
		sum := sha256.Sum256([]byte(s))
		sums[i] = hex.EncodeToString(sum[:])
	}
	line, err := json.Marshal(struct {
		SHA256 []string `json:"sha256"`
	}{sums})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", line)
	return err
}
