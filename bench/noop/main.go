// Command noop is the benchmark's no-op handler: it does nothing and exits
// 0, so that running it costs only the start of a small compiled program.
// It leaves its stdin unread, which pkg/runner allows.
package main

func main() {}
