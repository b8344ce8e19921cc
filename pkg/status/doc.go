// Package status owns php-resque's job status tracking: the key
// <ns>:job:<id>:status and its JSON value
//
//	{"status":2,"updated":1795769182,"started":1795769182}
//
// where status is 1 waiting, 2 running, 3 failed or 4 complete. A status is
// created (with no expiry) when a tracked job is enqueued, moved to running
// when a worker takes the job, and to failed or complete when it ends, at
// which point it expires after TTL (24 hours).
//
// As in php-resque, only a status that exists is updated: a job enqueued
// without tracking never gains one. Updates rewrite only the status and
// updated fields, so fields written by other tools (php-resque's "result",
// "started") survive. Every update is one atomic Lua script call.
//
// The package knows nothing about queues or processes.
package status
