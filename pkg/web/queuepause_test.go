package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/pkg/queue"
)

// The Queues page's Pause and Resume buttons write and delete
// resque-pause's key (pause:queue:<q> "true"); the page and the overview
// show the state. Both need the CSRF token and a POST, refuse a bad queue
// name and go back only to a page of this dashboard.
func TestQueuePause(t *testing.T) {
	e := start(t, "")
	tok := token(t, e)
	pauseKey := func() string {
		v, err := redis.String(e.srv.Do(t, "GET", queue.QueuePauseKey(ns, "high")), nil)
		if err == redis.ErrNil {
			return "(none)"
		}
		return v
	}
	page := mustGet(t, e, "/queues", `action="/pause-queue"`, `name="queue" value="high"`)
	if strings.Contains(page, "/resume-queue") {
		t.Errorf("a Resume button with no queue paused:\n%s", page)
	}

	if c, _ := postForm(t, e, "/pause-queue", url.Values{"queue": {"high"}}); c != http.StatusForbidden {
		t.Errorf("pause without the CSRF token: %d, want 403", c)
	}
	if c, _ := get(t, e, "/pause-queue?queue=high&csrf="+tok); c != http.StatusMethodNotAllowed {
		t.Errorf("GET /pause-queue: %d, want 405", c)
	}
	if got := pauseKey(); got != "(none)" {
		t.Fatalf("refused requests paused high: %s", got)
	}

	c, loc := postForm(t, e, "/pause-queue", url.Values{"queue": {"high"}, "csrf": {tok}, "back": {"/queues"}})
	if c != http.StatusSeeOther || loc != "/queues" {
		t.Errorf("pause: %d to %q, want 303 to /queues", c, loc)
	}
	if got := pauseKey(); got != "true" {
		t.Errorf("pause:queue:high = %s, want resque-pause's \"true\"", got)
	}
	page = mustGet(t, e, "/queues", `action="/resume-queue"`, `<span class="state paused">paused</span>`)
	if strings.Count(page, `action="/pause-queue"`) != 2 {
		t.Errorf("want Pause buttons for empty and low only:\n%s", page)
	}
	mustGet(t, e, "/", `high</a> <span class="state paused">paused</span>`)

	for _, back := range []string{"//evil.example/", "https://evil.example/queues"} {
		if _, loc := postForm(t, e, "/resume-queue", url.Values{"queue": {"high"}, "csrf": {tok}, "back": {back}}); loc != "/queues" {
			t.Errorf("resume with back %q went to %q, want /queues", back, loc)
		}
	}
	if got := pauseKey(); got != "(none)" {
		t.Errorf("pause:queue:high after resume = %s, want no key", got)
	}

	for _, q := range []string{"", "a,b", "x y"} {
		if c, _ := postForm(t, e, "/pause-queue", url.Values{"queue": {q}, "csrf": {tok}}); c != http.StatusBadRequest {
			t.Errorf("pause of queue %q: %d, want 400", q, c)
		}
	}
}
