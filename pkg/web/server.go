package web

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

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
}

const defaultCount = 20

type server struct {
	cfg   Config
	log   hclog.Logger
	pages map[string]*template.Template
	csrf  string
}

// New returns the dashboard's handler.
func New(cfg Config) http.Handler {
	s := &server{cfg: cfg, log: cfg.Logger, pages: map[string]*template.Template{}}
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
	for _, p := range []string{"overview", "queues", "queue", "workers", "failed", "delayed", "status"} {
		t := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+p+".html"))
		s.pages[p] = t
	}

	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("/static/", http.StripPrefix("/static/", http.FileServer(http.FS(static))))
	mux.HandleFunc("/", s.overview)
	mux.HandleFunc("/queues", s.queues)
	mux.HandleFunc("/queues/", s.queuePeek)
	mux.HandleFunc("/workers", s.workers)
	mux.HandleFunc("/failed", s.failed)
	mux.HandleFunc("/failed/retry", s.mutate(s.retry))
	mux.HandleFunc("/failed/remove", s.mutate(s.remove))
	mux.HandleFunc("/failed/retry-all", s.mutate(s.retryAll))
	mux.HandleFunc("/failed/clear", s.mutate(s.clear))
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

// secure checks the Host, then basic auth (when configured), and adds
// protective headers.
func (s *server) secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'")
		if !AllowedHost(r.Host, s.cfg.Hosts) {
			s.log.Debug("request for a foreign host refused", "host", r.Host, "path", r.URL.Path, "remote", r.RemoteAddr)
			http.Error(w, misdirected(r.Host), http.StatusMisdirectedRequest)
			return
		}
		if s.cfg.Auth != "" {
			user, pass, ok := r.BasicAuth()
			got := sha256.Sum256([]byte(user + ":" + pass))
			want := sha256.Sum256([]byte(s.cfg.Auth))
			if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
				h.Set("WWW-Authenticate", `Basic realm="resqued", charset="UTF-8"`)
				http.Error(w, "authentication required", http.StatusUnauthorized)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// misdirected is the body of the 421 for a Host the dashboard does not
// answer to: what happened, and which flag to set.
func misdirected(host string) string {
	name := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		name = h
	}
	if name == "" {
		name = "NAME"
	}
	return fmt.Sprintf("misdirected request: this dashboard answers only to localhost, 127.0.0.1, [::1], "+
		"its --listen address and the names given with --web-host, not to %q. "+
		"If you reach it by that name (through a reverse proxy, say), start it with --web-host %s "+
		"(or RESQUED_WEB_HOST=%s).", host, name, name)
}

// AllowedHost reports whether the dashboard answers to a request whose
// Host header is host: a loopback name (localhost, a 127.x.y.z or ::1
// address) on any port, or one of hosts ("name" on any port, "name:port"
// on that port). Names compare without case and without a trailing dot.
func AllowedHost(host string, hosts []string) bool {
	name, port := splitHost(host)
	if name == "" {
		return false
	}
	if name == "localhost" {
		return true
	}
	if ip := net.ParseIP(name); ip != nil && ip.IsLoopback() {
		return true
	}
	for _, h := range hosts {
		n, p := splitHost(h)
		if n == name && (p == "" || p == port) {
			return true
		}
	}
	return false
}

// splitHost splits "name", "name:port", "[v6]" or "[v6]:port" into the
// lower-case name without brackets or trailing dot, and the port.
func splitHost(host string) (name, port string) {
	name = host
	if h, p, err := net.SplitHostPort(host); err == nil {
		name, port = h, p
	}
	name = strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(name, "["), "]"), ".")
	return strings.ToLower(name), port
}

// mutate allows only a POST with the right CSRF token from this origin.
func (s *server) mutate(fn func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "method not allowed: use the dashboard's buttons", http.StatusMethodNotAllowed)
			return
		}
		if !sameOrigin(r) {
			http.Error(w, "forbidden: cross-origin request", http.StatusForbidden)
			return
		}
		tok := r.PostFormValue("csrf")
		if subtle.ConstantTimeCompare([]byte(tok), []byte(s.csrf)) != 1 {
			http.Error(w, "forbidden: missing or wrong CSRF token; reload the page", http.StatusForbidden)
			return
		}
		if err := fn(w, r); err != nil {
			s.fail(w, err)
			return
		}
		back := "/failed"
		if q := r.PostFormValue("back"); strings.HasPrefix(q, "/failed") && !strings.HasPrefix(q, "//") {
			back = q
		}
		http.Redirect(w, r, back, http.StatusSeeOther)
	}
}

// sameOrigin checks Origin, else Referer, against the Host when present.
func sameOrigin(r *http.Request) bool {
	for _, h := range []string{"Origin", "Referer"} {
		v := r.Header.Get(h)
		if v == "" {
			continue
		}
		if v == "null" {
			return false
		}
		u, err := url.Parse(v)
		if err != nil {
			return false
		}
		return strings.EqualFold(u.Host, r.Host)
	}
	return true
}

func (s *server) fail(w http.ResponseWriter, err error) {
	s.log.Error("dashboard", "error", err)
	code := http.StatusInternalServerError
	if errors.Is(err, queue.ErrNoFailure) {
		code = http.StatusNotFound
	}
	http.Error(w, err.Error(), code)
}

// page is what every template gets.
type page struct {
	Title  string
	Nav    string
	CSRF   string
	Path   string // for the back field and fragment refresh
	Live   bool
	Error  string
	Data   interface{}
	Start  int
	Count  int
	Total  int
	Prev   string
	Next   string
	Filter url.Values
}

func (s *server) render(w http.ResponseWriter, r *http.Request, name string, p *page) {
	p.CSRF = s.csrf
	u := *r.URL
	q := u.Query()
	q.Del("fragment")
	u.RawQuery = q.Encode()
	p.Path = u.RequestURI()
	t := s.pages[name]
	tmpl := "layout.html"
	if r.URL.Query().Get("fragment") == "1" {
		tmpl = "table"
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := t.ExecuteTemplate(w, tmpl, p); err != nil {
		s.log.Error("render", "page", name, "error", err)
	}
}

func onlyGET(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return false
	}
	return true
}

// paging reads ?start=&count= and fills the page's paging links.
func paging(r *http.Request, p *page) {
	q := r.URL.Query()
	p.Start, _ = strconv.Atoi(q.Get("start"))
	if p.Start < 0 {
		p.Start = 0
	}
	p.Count, _ = strconv.Atoi(q.Get("count"))
	if p.Count <= 0 || p.Count > 1000 {
		p.Count = defaultCount
	}
}

func (p *page) links(r *http.Request) {
	link := func(start int) string {
		q := r.URL.Query()
		q.Del("fragment")
		q.Set("start", strconv.Itoa(start))
		q.Set("count", strconv.Itoa(p.Count))
		return r.URL.Path + "?" + q.Encode()
	}
	if p.Start > 0 {
		prev := p.Start - p.Count
		if prev < 0 {
			prev = 0
		}
		p.Prev = link(prev)
	}
	if p.Start+p.Count < p.Total {
		p.Next = link(p.Start + p.Count)
	}
}

func (s *server) overview(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	if !onlyGET(w, r) {
		return
	}
	st, err := s.cfg.Queue.Stats(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	ws, err := s.cfg.Queue.WorkerInfos(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	s.render(w, r, "overview", &page{Title: "Overview", Nav: "overview", Live: true,
		Data: struct {
			Stats   *queue.Stats
			Workers []queue.WorkerInfo
		}{st, ws}})
}

func (s *server) queues(w http.ResponseWriter, r *http.Request) {
	if !onlyGET(w, r) {
		return
	}
	qs, err := s.cfg.Queue.QueueSizes(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	s.render(w, r, "queues", &page{Title: "Queues", Nav: "queues", Live: true, Data: qs})
}

// peekJob is one waiting job as the queue page shows it.
type peekJob struct {
	Index int
	Class string
	Args  string
	Raw   string
}

func (s *server) queuePeek(w http.ResponseWriter, r *http.Request) {
	if !onlyGET(w, r) {
		return
	}
	name := strings.TrimPrefix(r.URL.Path, "/queues/")
	if err := queue.ValidateQueueName(name); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p := &page{Title: "Queue " + name, Nav: "queues", Live: true}
	paging(r, p)
	total, err := s.cfg.Queue.Size(r.Context(), name)
	if err != nil {
		s.fail(w, err)
		return
	}
	raws, err := s.cfg.Queue.Peek(r.Context(), name, p.Start, p.Count)
	if err != nil {
		s.fail(w, err)
		return
	}
	jobs := make([]peekJob, 0, len(raws))
	for i, raw := range raws {
		j := peekJob{Index: p.Start + i, Raw: string(raw)}
		var v struct {
			Class string          `json:"class"`
			Args  json.RawMessage `json:"args"`
		}
		if json.Unmarshal(raw, &v) == nil {
			j.Class, j.Args = v.Class, string(v.Args)
		}
		jobs = append(jobs, j)
	}
	p.Total = total
	p.links(r)
	p.Data = struct {
		Queue string
		Jobs  []peekJob
	}{name, jobs}
	s.render(w, r, "queue", p)
}

func (s *server) workers(w http.ResponseWriter, r *http.Request) {
	if !onlyGET(w, r) {
		return
	}
	ws, err := s.cfg.Queue.WorkerInfos(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	s.render(w, r, "workers", &page{Title: "Workers", Nav: "workers", Live: true, Data: ws})
}

// failedRow is one failure record as the Failed page shows it.
type failedRow struct {
	queue.FailedEntry
	PayloadText string
}

func (s *server) failed(w http.ResponseWriter, r *http.Request) {
	if !onlyGET(w, r) {
		return
	}
	p := &page{Title: "Failed", Nav: "failed", Live: true}
	paging(r, p)
	q := r.URL.Query()
	fq, fc := q.Get("queue"), q.Get("class")
	p.Filter = url.Values{"queue": {fq}, "class": {fc}}
	total, err := s.cfg.Queue.FailedCount(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	p.Total = total
	entries, err := s.cfg.Queue.FailedRange(r.Context(), p.Start, p.Count)
	if err != nil {
		s.fail(w, err)
		return
	}
	rows := make([]failedRow, 0, len(entries))
	for _, e := range entries {
		if (fq != "" && e.Queue != fq) || (fc != "" && e.Class != fc) {
			continue
		}
		row := failedRow{FailedEntry: e}
		if e.Invalid {
			row.PayloadText = string(e.Raw)
		} else {
			row.PayloadText = prettyJSON(string(e.Payload))
		}
		rows = append(rows, row)
	}
	p.links(r)
	p.Data = rows
	s.render(w, r, "failed", p)
}

func formIndex(r *http.Request) (int, error) {
	i, err := strconv.Atoi(r.PostFormValue("index"))
	if err != nil || i < 0 {
		return 0, fmt.Errorf("index %q: %w", r.PostFormValue("index"), queue.ErrNoFailure)
	}
	return i, nil
}

func (s *server) retry(_ http.ResponseWriter, r *http.Request) error {
	i, err := formIndex(r)
	if err != nil {
		return err
	}
	_, err = s.cfg.Queue.RequeueFailed(r.Context(), i, time.Now())
	return err
}

func (s *server) remove(_ http.ResponseWriter, r *http.Request) error {
	i, err := formIndex(r)
	if err != nil {
		return err
	}
	return s.cfg.Queue.RemoveFailed(r.Context(), i)
}

func (s *server) retryAll(_ http.ResponseWriter, r *http.Request) error {
	_, err := s.cfg.Queue.RequeueAllFailed(r.Context(), time.Now())
	return err
}

func (s *server) clear(_ http.ResponseWriter, r *http.Request) error {
	_, err := s.cfg.Queue.ClearFailed(r.Context())
	return err
}

func (s *server) delayed(w http.ResponseWriter, r *http.Request) {
	if !onlyGET(w, r) {
		return
	}
	p := &page{Title: "Delayed", Nav: "delayed", Live: true}
	items, err := s.cfg.Queue.ListDelayed(r.Context(), 500)
	if err != nil {
		s.fail(w, err)
		return
	}
	p.Data = items
	s.render(w, r, "delayed", p)
}

// statusView is a looked-up job status.
type statusView struct {
	Token    string
	Found    bool
	State    string
	Progress string
	Message  string
	Result   string
	Error    string
	Updated  string
}

func (s *server) statusPage(w http.ResponseWriter, r *http.Request) {
	if !onlyGET(w, r) {
		return
	}
	p := &page{Title: "Status", Nav: "status"}
	token := strings.TrimSpace(r.URL.Query().Get("token"))
	v := statusView{Token: token}
	switch {
	case token == "":
	case s.cfg.Status == nil:
		p.Error = "no status tracker configured"
	default:
		p.Live = true
		f, err := s.cfg.Status.GetFull(r.Context(), token)
		if errors.Is(err, status.ErrNotTracked) {
			p.Error = "no status for token " + token + " (never tracked, or expired)"
			break
		}
		if err != nil {
			s.fail(w, err)
			return
		}
		v.Found, v.State, v.Message, v.Error = true, f.Code.String(), f.Message, f.Detail.Error
		if f.Progress != nil {
			v.Progress = strconv.FormatFloat(*f.Progress, 'f', -1, 64)
		}
		if len(f.Result) > 0 {
			v.Result = prettyJSON(string(f.Result))
		}
		if f.Updated > 0 {
			v.Updated = time.Unix(f.Updated, 0).UTC().Format(time.RFC3339)
		}
	}
	p.Data = v
	s.render(w, r, "status", p)
}

// prettyJSON indents s when it is JSON (keeping its keys' order and its
// characters), else returns it as is.
func prettyJSON(s string) string {
	var b bytes.Buffer
	if json.Indent(&b, []byte(s), "", "  ") != nil {
		return s
	}
	return b.String()
}
