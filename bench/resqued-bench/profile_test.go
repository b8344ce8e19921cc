package main

import (
	"context"
	"io"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/redisurl"
	"github.com/resqued/resqued/pkg/runner"
	"github.com/resqued/resqued/pkg/status"
	"github.com/resqued/resqued/pkg/worker"
)

// BenchmarkWorkerDrain runs one worker in this process, configured as the
// daemon configures it, over b.N pre-enqueued Noop jobs, so that a CPU
// profile shows where the daemon's own time per job goes:
//
//	go test -run '^$' -bench WorkerDrain -benchtime 2000x -benchmem -cpuprofile cpu.out ./bench/resqued-bench/
//	go tool pprof -top -cum resqued-bench.test cpu.out
//
// It reports the worker's own CPU per job (worker-cpu-ms/op), which
// other load on the machine disturbs far less than wall time.
//
// make test does not run it (it is a benchmark).
func BenchmarkWorkerDrain(b *testing.B) { benchmarkDrain(b, "Noop", "Noop", "../noop") }

// BenchmarkWorkerDrainPersistent is BenchmarkWorkerDrain with the
// persistent compiled no-op handler (bench/pnoop): what the worker costs
// per job when no process is started.
func BenchmarkWorkerDrainPersistent(b *testing.B) {
	benchmarkDrain(b, "Noop", "Noop.persistent", "../pnoop")
}

func benchmarkDrain(b *testing.B, class, file, pkg string) {
	srv := redistest.Start(b)
	dir := b.TempDir()
	if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, file), pkg).CombinedOutput(); err != nil {
		b.Fatalf("build %s: %v\n%s", pkg, err, out)
	}
	pool, err := redisurl.NewPool(srv.URL(), redisurl.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	rs := &redisServer{addr: srv.Addr, pool: pool.Pool}
	if err := rs.preEnqueue(class, b.N); err != nil {
		b.Fatal(err)
	}
	// The daemon's logger at its default level (warn), discarding.
	log := hclog.New(&hclog.LoggerOptions{Name: "resqued", Level: hclog.Warn, Output: io.Discard})
	run, err := runner.New(runner.Config{Dir: dir, Logger: log.Named("handler")})
	if err != nil {
		b.Fatal(err)
	}
	w, err := worker.New(worker.Config{
		Queue: queue.New(pool.Pool, "resque"), Status: status.New(pool.Pool, "resque"), Runner: run,
		Queues: []string{benchQueue}, Interval: -1, Logger: log.Named("worker"),
	})
	if err != nil {
		b.Fatal(err)
	}
	var self0, kids0, self1, kids1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self0)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids0)
	b.ResetTimer()
	if err := w.Run(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self1)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids1)
	// The worker's own CPU per job, and the handlers'.
	b.ReportMetric(float64(rusageCPU(&self1)-rusageCPU(&self0))/1e6/float64(b.N), "worker-cpu-ms/op")
	b.ReportMetric(float64(rusageCPU(&kids1)-rusageCPU(&kids0))/1e6/float64(b.N), "handler-cpu-ms/op")
	if err := rs.checkDrained(b.N); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkExecCeiling is the exec ceiling's loop in this process, for
// comparison with BenchmarkWorkerDrain's worker-cpu-ms/op: what starting
// a handler costs the parent when nothing else is done.
func BenchmarkExecCeiling(b *testing.B) {
	dir := b.TempDir()
	if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "Noop"), "../noop").CombinedOutput(); err != nil {
		b.Fatalf("build noop: %v\n%s", err, out)
	}
	spec := newSpawnSpec(dir, "Noop", "Noop")
	var self0, kids0, self1, kids1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self0)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := spawnOnce(spec); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self1)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids1)
	b.ReportMetric(float64(rusageCPU(&self1)-rusageCPU(&self0))/1e6/float64(b.N), "loop-cpu-ms/op")
	b.ReportMetric(float64(rusageCPU(&kids1)-rusageCPU(&kids0))/1e6/float64(b.N), "handler-cpu-ms/op")
}
