// Package web serves resqued's dashboard: a small, server-rendered,
// resque-web-like view of queues, workers, failed and delayed jobs and job
// statuses, with retry/remove actions on the failed list. It reads and
// writes the same keys resque-web does, through pkg/queue's admin
// functions. Every mutation is a POST carrying a per-process CSRF token;
// optional HTTP basic auth guards every route.
package web
