package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/resqued/resqued/pkg/history"
	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/status"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config is what the dashboard needs.
type Config struct {
	Queue  *queue.Client
	Status *status.Tracker // nil: the Status page says so
	// Auth is "user:password" to require HTTP basic auth on every route
	// but /healthz, or "".
	Auth string
	// Hosts are the names, besides the loopback ones, that the dashboard
	// answers to in a request's Host header: the name it is reached by
	// through a reverse proxy, or the address it listens on. An entry
	// "name" matches on any port, "name:port" on that port only.
	// localhost, 127.0.0.1 (any 127.x.y.z) and [::1] are always accepted,
	// with or without a port. Any other Host gets 421 Misdirected
	// Request, so a page on another site that rebinds its own name to
	// this address (DNS rebinding) reads nothing and changes nothing.
	Hosts []string
	// Metrics, when set, is served at /metrics, behind the Host check
	// and Auth like every page.
	Metrics http.Handler
	// Healthz, when set, is served at /healthz with neither check, for
	// load balancers, which call by IP address and carry no credentials.
	// It must say no more than whether Redis answers.
	Healthz http.Handler
	Logger  hclog.Logger
	// Limits are the handlers config's concurrency and rate limits: the
	// Workers page shows each one's state. Nil: none shown.
	Limits *queue.Limits
	// Now is the clock the charts are drawn at; nil means time.Now. A
	// seeded run (tests) passes its own.
	Now func() time.Time
}

const defaultCount = 20

type server struct {
	cfg  Config
	hist *history.Reader
	// The Classes page's figures, reused for classCacheTTL (charts.go).
	classMu         sync.Mutex
	classAt         time.Time
	classStatsCache []history.ClassStats
	clock           queue.HeadClock // first sightings of queue heads without a time
	log             hclog.Logger
	pages           map[string]*template.Template
	csrf            string
}

// now is the dashboard's clock (Config.Now).
func (s *server) now() time.Time {
	if s.cfg.Now != nil {
		return s.cfg.Now()
	}
	return time.Now()
}

// New returns the dashboard's handler.
func New(cfg Config) http.Handler {
	s := &server{cfg: cfg, log: cfg.Logger, pages: map[string]*template.Template{},
		hist: &history.Reader{Queue: cfg.Queue, Now: cfg.Now}}
	if s.log == nil {
		s.log = hclog.NewNullLogger()
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		panic("web: no randomness for the CSRF secret: " + err.Error())
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("resqued-web-csrf"))
	s.csrf = hex.EncodeToString(m.Sum(nil))

	funcs := template.FuncMap{
		"add":    func(a, b int) int { return a + b },
		"sub":    func(a, b int) int { return a - b },
		"pretty": prettyJSON,
		"join":   strings.Join,
	}
	for _, p := range []string{"overview", "queues", "queue", "classes", "workers", "failed", "delayed", "status"} {
		t := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+p+".html"))
		s.pages[p] = t
	}

	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("/static/", http.StripPrefix("/static/", http.FileServer(http.FS(static))))
	mux.HandleFunc("/", s.overview)
	mux.HandleFunc("/queues", s.queues)
	mux.HandleFunc("/queues/", s.queuePeek)
	mux.HandleFunc("/classes", s.classes)
	mux.HandleFunc("/workers", s.workers)
	mux.HandleFunc("/failed", s.failed)
	mux.HandleFunc("/failed/retry", s.mutate(s.retry))
	mux.HandleFunc("/failed/remove", s.mutate(s.remove))
	mux.HandleFunc("/failed/retry-all", s.mutate(s.retryAll))
	mux.HandleFunc("/failed/clear", s.mutate(s.clear))
	mux.HandleFunc("/cancel", s.mutateTo("/workers", s.cancel))
	mux.HandleFunc("/pause-queue", s.mutateTo("/queues", s.setQueuePause(true)))
	mux.HandleFunc("/resume-queue", s.mutateTo("/queues", s.setQueuePause(false)))
	mux.HandleFunc("/delayed", s.delayed)
	mux.HandleFunc("/status", s.statusPage)
	if cfg.Metrics != nil {
		mux.Handle("/metrics", cfg.Metrics)
	}
	guarded := s.secure(mux)
	if cfg.Healthz == nil {
		return guarded
	}
	open := http.NewServeMux()
	open.Handle("/healthz", cfg.Healthz)
	open.Handle("/", guarded)
	return open
}
