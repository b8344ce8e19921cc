package web_test

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/status"
)

// postForm posts form to path and returns the status and the Location
// it redirects to.
func postForm(t *testing.T, e *env, path string, form url.Values) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.ts.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}

// The Workers page's Cancel button asks the busy worker, through its
// cancel list, to stop its job; the Status page's cancels a waiting
// tracked job by removing it. Both need the CSRF token and go back only
// to a page of this dashboard.
func TestCancel(t *testing.T) {
	e := start(t, "")
	tok := token(t, e)
	page := mustGet(t, e, "/workers", `action="/cancel"`, `name="worker" value="`+busyWorker+`"`)
	if strings.Contains(page, `name="worker" value="`+idleWorker+`"`) {
		t.Error("an idle worker has a Cancel button")
	}

	if c, _ := postForm(t, e, "/cancel", url.Values{"worker": {busyWorker}}); c != http.StatusForbidden {
		t.Errorf("cancel without the CSRF token: %d, want 403", c)
	}
	c, loc := postForm(t, e, "/cancel", url.Values{"worker": {busyWorker}, "csrf": {tok}, "back": {"/workers"}})
	if c != http.StatusSeeOther || loc != "/workers" {
		t.Fatalf("cancel worker: %d to %q", c, loc)
	}
	reqs, _ := redis.Strings(e.srv.Do(t, "LRANGE", queue.CancelKey(ns, busyWorker), 0, -1), nil)
	if len(reqs) != 1 {
		t.Fatalf("cancel list = %v, want one request", reqs)
	}
	var req queue.CancelRequest
	_ = json.Unmarshal([]byte(reqs[0]), &req)
	sum := sha1.Sum([]byte(busyJob))
	if req.Record != hex.EncodeToString(sum[:]) || !strings.HasPrefix(req.By, "dashboard (127.0.0.1:") {
		t.Errorf("request = %+v, want the busy job's record, by the dashboard and its address", req)
	}
	for _, back := range []string{"//evil.example/", "https://evil.example/workers", `/\evil.example`, "/delayed", "javascript:alert(1)"} {
		if _, loc := postForm(t, e, "/cancel", url.Values{"worker": {busyWorker}, "csrf": {tok}, "back": {back}}); loc != "/workers" {
			t.Errorf("back %q: went to %q, want /workers", back, loc)
		}
	}

	// A waiting tracked job, from its Status page.
	e.srv.Do(t, "RPUSH", queue.QueueKey(ns, "high"), `{"class":"A","args":[],"id":"webtok"}`)
	e.srv.Do(t, "SET", status.Key(ns, "webtok"), `{"status":1,"updated":1800000000,"started":1800000000}`)
	mustGet(t, e, "/status?token=webtok", `action="/cancel"`, `name="id" value="webtok"`)
	c, loc = postForm(t, e, "/cancel", url.Values{"id": {"webtok"}, "csrf": {tok}, "back": {"/status?token=webtok"}})
	if c != http.StatusSeeOther || loc != "/status?token=webtok" {
		t.Fatalf("cancel queued: %d to %q", c, loc)
	}
	if left, _ := redis.Strings(e.srv.Do(t, "LRANGE", queue.QueueKey(ns, "high"), 0, -1), nil); strings.Contains(strings.Join(left, ""), "webtok") {
		t.Errorf("the cancelled job is still queued: %v", left)
	}
	body := mustGet(t, e, "/status?token=webtok", "failed", "cancelled by dashboard (127.0.0.1:")
	if strings.Contains(body, `action="/cancel"`) {
		t.Error("a failed job still has a Cancel button")
	}

	for _, tc := range []struct {
		form url.Values
		want int
	}{
		{url.Values{"id": {"webtok"}}, http.StatusNotFound},
		{url.Values{"worker": {idleWorker}}, http.StatusNotFound},
		{url.Values{"id": {"a b"}}, http.StatusBadRequest},
		{url.Values{}, http.StatusBadRequest},
	} {
		tc.form.Set("csrf", tok)
		if c, _ := postForm(t, e, "/cancel", tc.form); c != tc.want {
			t.Errorf("cancel %v: %d, want %d", tc.form, c, tc.want)
		}
	}
}
