// Command pnoop is the benchmark's compiled persistent no-op handler: for
// every job line on stdin it answers {"done":"ok"} on the result fd.
package main

import (
	"bufio"
	"os"
	"strconv"
)

func main() {
	fd, err := strconv.Atoi(os.Getenv("RESQUE_RESULT_FD"))
	out := os.Stdout
	if err == nil {
		out = os.NewFile(uintptr(fd), "result")
	}
	in := bufio.NewReaderSize(os.Stdin, 64<<10)
	for {
		if _, err := in.ReadSlice('\n'); err != nil && err != bufio.ErrBufferFull {
			return
		}
		if _, err := out.Write([]byte("{\"done\":\"ok\"}\n")); err != nil {
			return
		}
	}
}
