// Package worker is one Resque worker: it registers in Redis, takes jobs
// from its queues in priority order, runs each through pkg/runner, and
// records the outcome where Resque's tools look for it. It wires
// pkg/queue, pkg/status and pkg/runner together and owns the job
// lifecycle; it owns no Redis key layout and spawns no process itself.
//
// A Worker runs one job at a time, like a Ruby Resque worker. Several
// workers (COUNT) are several processes, each with its own Worker.
//
// # Control
//
// Its methods carry Resque's signal meanings (see docs/operations.md):
//
//	Shutdown   QUIT       finish the running job, then exit
//	Terminate  TERM, INT  stop the running job (TERM, grace, KILL), then exit
//	Force      2nd TERM   KILL the running job now
//	KillJob    USR1       stop the running job, keep working
//	Pause      USR2       finish the running job, take no new ones
//	Resume     CONT       take jobs again
//
// A job that is stopped is recorded as failed, never dropped.
package worker
