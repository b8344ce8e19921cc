// Command pstamp is the benchmark's persistent pickup-latency handler:
// as soon as a job line arrives on stdin it reads the clock, writes the
// time (Unix nanoseconds) to the FIFO named by RESQUED_BENCH_STAMP, and
// ends the job with {"done":"ok"} on the result fd.
package main

import (
	"bufio"
	"os"
	"strconv"
	"time"
)

func main() {
	fd, err := strconv.Atoi(os.Getenv("RESQUE_RESULT_FD"))
	out := os.Stdout
	if err == nil {
		out = os.NewFile(uintptr(fd), "result")
	}
	fifo, err := os.OpenFile(os.Getenv("RESQUED_BENCH_STAMP"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		os.Stderr.WriteString("pstamp: " + err.Error() + "\n")
		os.Exit(1)
	}
	in := bufio.NewReaderSize(os.Stdin, 64<<10)
	for {
		if _, err := in.ReadSlice('\n'); err != nil && err != bufio.ErrBufferFull {
			return
		}
		now := time.Now().UnixNano()
		_, _ = fifo.Write(append(strconv.AppendInt(make([]byte, 0, 24), now, 10), '\n'))
		if _, err := out.Write([]byte("{\"done\":\"ok\"}\n")); err != nil {
			return
		}
	}
}
