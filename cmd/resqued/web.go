package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/scheduler"
	"github.com/resqued/resqued/pkg/status"
	"github.com/resqued/resqued/pkg/web"
)

func webCommand() *cli.Command {
	return &cli.Command{
		Name:      "web",
		Usage:     "serve a resque-web-like dashboard: queues, workers, failed and delayed jobs, statuses",
		ArgsUsage: " ",
		Description: "Binds to loopback by default. Listening on any other address needs --web-auth " +
			"(HTTP basic auth), or --web-insecure to accept an open dashboard that can retry and delete jobs.",
		Flags: append(connFlags(),
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:5678", Usage: "`ADDR` to listen on"},
			&cli.StringFlag{Name: "web-auth", EnvVars: []string{"RESQUED_WEB_AUTH"}, Usage: "require HTTP basic auth as `USER:PASS`"},
			&cli.BoolFlag{Name: "web-insecure", Usage: "allow a non-loopback --listen without --web-auth"},
		),
		Action: webAction,
	}
}

func webAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return &usageError{msg: "web: takes no arguments", hint: "resqued web --listen 127.0.0.1:5678"}
	}
	addr, auth := c.String("listen"), c.String("web-auth")
	if auth != "" && !strings.Contains(auth, ":") {
		return &usageError{msg: "web: --web-auth wants USER:PASS", hint: "resqued web --web-auth admin:s3cret"}
	}
	loop, err := loopbackAddr(addr)
	if err != nil {
		return &usageError{msg: "web: --listen " + addr + ": " + err.Error(), hint: "resqued web --listen 127.0.0.1:5678"}
	}
	if !loop && auth == "" && !c.Bool("web-insecure") {
		return &usageError{
			msg:  "web: refusing to listen on " + addr + " without --web-auth: anyone who can reach it could retry and delete jobs",
			hint: "resqued web --listen " + addr + " --web-auth USER:PASS (or RESQUED_WEB_AUTH), or --web-insecure if a proxy guards it",
		}
	}
	log, err := newLogger(c)
	if err != nil {
		return err
	}
	pool, err := newPool(c, log)
	if err != nil {
		return err
	}
	defer pool.Close()
	ns := c.String("namespace")
	h := web.New(web.Config{
		Queue:     queue.New(pool, ns),
		Scheduler: scheduler.New(pool, ns, log),
		Status:    status.New(pool, ns),
		Auth:      auth,
		Logger:    log.Named("web"),
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(c.App.ErrWriter, "resqued web: serving on http://%s/\n", ln.Addr())
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// loopbackAddr reports whether host:port only listens on loopback.
// An empty host or a host name other than localhost is not loopback.
func loopbackAddr(addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, err
	}
	if strings.EqualFold(host, "localhost") {
		return true, nil
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback(), nil
}
