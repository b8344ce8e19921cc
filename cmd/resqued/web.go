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

	"github.com/hashicorp/go-hclog"
	"github.com/urfave/cli/v2"

	"github.com/resqued/resqued/pkg/metrics"
	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/status"
	"github.com/resqued/resqued/pkg/web"
)

func webCommand() *cli.Command {
	return &cli.Command{
		Name:      "web",
		Usage:     "serve a resque-web-like dashboard: queues, workers, failed and delayed jobs, statuses",
		ArgsUsage: " ",
		Description: "Binds to loopback by default. Listening on any other address needs --web-auth " +
			"(HTTP basic auth), or --web-insecure to accept an open dashboard that can retry and delete jobs.\n\n" +
			"It answers only to requests for localhost, 127.0.0.1, [::1] and --listen's host; a name it is " +
			"reached by through a reverse proxy, or any name when listening on 0.0.0.0 or [::], is added with " +
			"--web-host. Other requests get 421 Misdirected Request (this stops DNS rebinding). " +
			"GET /healthz is answered to anyone; every other route, /metrics included, needs --web-auth when set.",
		Flags: append(connFlags(),
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:5678", Usage: "`ADDR` to listen on"},
			&cli.StringFlag{Name: "web-auth", EnvVars: []string{"RESQUED_WEB_AUTH"}, Usage: "require HTTP basic auth as `USER:PASS`"},
			&cli.BoolFlag{Name: "web-insecure", Usage: "allow a non-loopback --listen without --web-auth"},
			webHostFlag(),
			&cli.StringFlag{Name: "handlers-config", EnvVars: []string{"RESQUED_HANDLERS_CONFIG"}, Usage: "the daemons' handlers config `FILE`: the Workers page and /metrics show its concurrency and rate limits"},
			historyFlag,
		),
		Action: webAction,
	}
}

func webAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return &usageError{msg: "web: takes no arguments", hint: "resqued web --listen 127.0.0.1:5678"}
	}
	log, err := newLogger(c)
	if err != nil {
		return err
	}
	rc, err := connect(c, log)
	if err != nil {
		return err
	}
	defer rc.Close()
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	conf, err := loadHandlersConfig(c, "web: ")
	if err != nil {
		return err
	}
	stopWeb, err := serveWeb(c, c.String("listen"), rc.queue, rc.status, conf.Limits(), log)
	if err != nil {
		return err
	}
	// The queues' sizes and latencies are sampled for the charts while
	// a dashboard runs too, daemons or not.
	if c.Bool("history") {
		defer startLoop(ctx, newSampler(rc.queue, log.Named("history")).Run)()
	}
	<-ctx.Done()
	stopWeb()
	return nil
}

// webHostFlag is --web-host, for resqued web and the daemon's --web.
func webHostFlag() cli.Flag {
	return &cli.StringSliceFlag{Name: "web-host", EnvVars: []string{"RESQUED_WEB_HOST"},
		Usage: "also answer requests for host `NAME` (as the browser sends it, e.g. dash.example.com, or dash.example.com:8443 for that port only); repeat it, or comma-separate in the env. Needed behind a reverse proxy, and for any name but localhost when listening on 0.0.0.0 or [::]"}
}

// serveWeb serves the dashboard, plus GET /metrics (the Redis-side
// metrics) and GET /healthz, on addr until the returned function is
// called: for resqued web, and for the daemon's --web.
func serveWeb(c *cli.Context, addr string, q *queue.Client, st *status.Tracker, limits *queue.Limits, log hclog.Logger) (stop func(), err error) {
	auth := c.String("web-auth")
	if auth != "" && !strings.Contains(auth, ":") {
		return nil, &usageError{msg: "web: --web-auth wants USER:PASS", hint: "--web-auth admin:s3cret"}
	}
	loop, err := loopbackAddr(addr)
	if err != nil {
		return nil, &usageError{msg: "web: listen " + addr + ": " + err.Error(), hint: "--listen 127.0.0.1:5678"}
	}
	if !loop && auth == "" && !c.Bool("web-insecure") {
		return nil, &usageError{
			msg:  "web: refusing to listen on " + addr + " without --web-auth: anyone who can reach it could retry and delete jobs",
			hint: "--web-auth USER:PASS (or RESQUED_WEB_AUTH), or --web-insecure if a proxy guards it",
		}
	}
	hosts, wildcard, err := webHosts(addr, c.StringSlice("web-host"))
	if err != nil {
		return nil, err
	}
	reg := metrics.NewRegistry()
	reg.Register(metrics.NewCollector(q).WithLimits(limits))
	handler := web.New(web.Config{
		Limits:  limits,
		Queue:   q,
		Status:  st,
		Auth:    auth,
		Hosts:   hosts,
		Metrics: metrics.Handler(reg),
		Healthz: metrics.Healthz(q),
		Logger:  log.Named("web"),
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(c.App.ErrWriter, "resqued web: serving on http://%s/\n", ln.Addr())
	if wildcard && len(c.StringSlice("web-host")) == 0 {
		fmt.Fprintf(c.App.ErrWriter, "resqued web: listening on every address, but answering only to localhost, 127.0.0.1 and [::1]; "+
			"add the names it is reached by with --web-host NAME (or RESQUED_WEB_HOST)\n")
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("web server stopped", "error", err)
		}
	}()
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}, nil
}

// webHosts is the list of Host names the dashboard on addr answers to
// besides the loopback ones: addr's own host, unless it is a wildcard
// (0.0.0.0, [::] or empty), which names no host, and the --web-host names.
func webHosts(addr string, extra []string) (hosts []string, wildcard bool, err error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, false, &usageError{msg: "web: listen " + addr + ": " + err.Error(), hint: "--listen 127.0.0.1:5678"}
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		wildcard = true
	} else {
		hosts = append(hosts, host)
	}
	for _, h := range extra {
		h = strings.TrimSpace(h)
		if h == "" || strings.ContainsAny(h, "/ ") || strings.Contains(h, "@") {
			return nil, false, &usageError{
				msg:  fmt.Sprintf("web: --web-host %q: want a host name as the browser sends it, such as dash.example.com, not a URL", h),
				hint: "--web-host dash.example.com",
			}
		}
		hosts = append(hosts, h)
	}
	return hosts, wildcard, nil
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

// daemonWebFlags let the daemon serve the dashboard itself (--web ADDR).
func daemonWebFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "web", EnvVars: []string{"RESQUED_WEB"}, Usage: "also serve the dashboard (as resqued web) on `ADDR`, e.g. 127.0.0.1:5678; empty: off"},
		&cli.StringFlag{Name: "web-auth", EnvVars: []string{"RESQUED_WEB_AUTH"}, Usage: "require HTTP basic auth on the dashboard as `USER:PASS`"},
		&cli.BoolFlag{Name: "web-insecure", Usage: "allow a non-loopback --web without --web-auth"},
		webHostFlag(),
	}
}

// serveDaemonWeb starts the dashboard for --web, if asked for.
func serveDaemonWeb(c *cli.Context, q *queue.Client, st *status.Tracker, limits *queue.Limits, log hclog.Logger) (stop func(), err error) {
	if c.String("web") == "" {
		return func() {}, nil
	}
	return serveWeb(c, c.String("web"), q, st, limits, log)
}
