package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/resqued/resqued/pkg/history"
	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/status"
)

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
	qs, err := s.queueRows(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	tp, windows, err := s.throughputFigure(r.Context(), r, history.ParseWindow(r.URL.Query().Get("window")))
	if err != nil {
		s.fail(w, err)
		return
	}
	s.render(w, r, "overview", &page{Title: "Overview", Nav: "overview", Live: true,
		Data: struct {
			Stats      *queue.Stats
			Queues     []queueRow
			Workers    []queue.WorkerInfo
			Throughput figure
			Windows    []windowLink
			Sizes      figure
		}{st, qs, ws, tp, windows, queueBars(qs)}})
}

func (s *server) queues(w http.ResponseWriter, r *http.Request) {
	if !onlyGET(w, r) {
		return
	}
	qs, err := s.queueRows(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	sparks, numbers, err := s.queueHistory(r.Context(), qs)
	if err != nil {
		s.fail(w, err)
		return
	}
	rows := make([]queueChartRow, len(qs))
	for i, q := range qs {
		rows[i] = queueChartRow{queueRow: q, Sparks: sparks[q.Queue]}
	}
	s.render(w, r, "queues", &page{Title: "Queues", Nav: "queues", Live: true, Data: struct {
		Rows    []queueChartRow
		Numbers queueNumbers
	}{rows, numbers}})
}

// queueChartRow is a queue on the Queues page: its row and last hour.
type queueChartRow struct {
	queueRow
	Sparks queueSparks
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
	var limits []queue.LimitUse
	if s.cfg.Limits != nil {
		qs, err := s.cfg.Queue.Queues(r.Context())
		if err == nil {
			limits, err = s.cfg.Queue.LimitsInUse(r.Context(), s.cfg.Limits, qs)
		}
		if err != nil {
			s.fail(w, err)
			return
		}
	}
	strips, err := s.workerStrips(r.Context(), ws)
	if err != nil {
		s.fail(w, err)
		return
	}
	s.render(w, r, "workers", &page{Title: "Workers", Nav: "workers", Live: true, Data: struct {
		Workers []queue.WorkerInfo
		Limits  []queue.LimitUse
		Strips  map[string]workerStrip
	}{ws, limits, strips}})
}

// failedRow is one failure record as the Failed page shows it.
type failedRow struct {
	queue.FailedEntry
	PayloadText string
	// OutputID and Output are the job's kept output, if any (output.go).
	OutputID string
	Output   *queue.Output
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
	s.keptOutputs(r.Context(), rows)
	p.links(r)
	p.Data = rows
	s.render(w, r, "failed", p)
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
	Output   *queue.Output // kept by --keep-output, if any
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
		v.Output = s.keptOutput(r.Context(), token)
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
