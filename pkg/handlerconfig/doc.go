// Package handlerconfig owns the handlers config file (--handlers-config):
// what each job class's handler is given beyond the daemon's flags. It is
// parsed once and checked whole at start, so that a mistake stops the
// daemon with a message naming the file, line, class and field, and at
// run time a job's settings are one map read. It knows nothing of Redis
// or of processes; the worker hands what it says to the runner.
//
// The file is YAML:
//
//	classes:
//	  Resize:
//	    memory: 512M      # runner.Limits.Memory
//	    cpu: 30s          # runner.Limits.CPU (CPU time)
//	    timeout: 60s      # wall clock, instead of --timeout
//	    max_output: 100M  # runner.Limits.Output (stdout+stderr)
//	    procs: 16         # runner.Limits.Procs
//	    env:
//	      MAGICK_THREAD_LIMIT: "1"
//
// Sizes take binary units as systemd does (512M = 512 MiB, 2G, 100k, or
// plain bytes); durations take Go's form (30s, 2m, 1h30m) or plain
// seconds. A field a class leaves out keeps the flag's default; 0 means
// no limit of that kind for the class. Later issues add fields (such as
// concurrency and rate) beside these.
//
// A top-level queues: section limits the jobs taken from a queue,
// whatever their class, across every worker (Config.Limits):
//
//	queues:
//	  reports:
//	    concurrency: 2    # at most 2 jobs of queue reports at once
package handlerconfig
