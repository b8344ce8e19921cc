// Package web serves resqued's dashboard: a small, server-rendered,
// resque-web-like view of queues, workers, failed and delayed jobs and job
// statuses, with retry/remove actions on the failed list. It reads and
// writes the same keys resque-web does, through pkg/queue's admin
// functions. A request whose Host is not one of the dashboard's own names
// (loopback, Config.Hosts) is refused with 421 before anything else, which
// stops DNS rebinding; optional HTTP basic auth then guards every route
// but /healthz; every mutation is a POST carrying a per-process CSRF token.
package web
