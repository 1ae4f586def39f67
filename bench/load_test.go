package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// recorder is a WebSocket server that keeps what each socket sends, by the
// "i" in its URL; a socket with "stall" in its URL is never read.
type recorder struct {
	stop chan struct{} // ends the stalled sockets' handlers
	mu   sync.Mutex
	got  map[string][]received
}

func newRecorder() *recorder {
	return &recorder{stop: make(chan struct{}), got: map[string][]received{}}
}

type received struct {
	at  time.Time // when the server read it
	fix fix
	raw string
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return
	}
	defer c.CloseNow()
	if r.URL.Query().Has("stall") {
		<-rec.stop
		return
	}
	id := r.URL.Query().Get("i")
	for {
		_, b, err := c.Read(r.Context())
		if err != nil {
			return
		}
		var f fix
		_ = json.Unmarshal(b, &f)
		rec.mu.Lock()
		rec.got[id] = append(rec.got[id], received{at: time.Now(), fix: f, raw: string(b)})
		rec.mu.Unlock()
	}
}

// openDrivers dials n sockets to srv, the ones in stall with ?stall, each
// with its reader, as dialAll does.
func openDrivers(t *testing.T, client *http.Client, srv string, n int, stall map[int]bool, cnt *counters) []*loadDriver {
	t.Helper()
	stations := []station{{ID: "a", Lat: 12.9, Lng: 77.6, RadiusM: 800}}
	ds := make([]*loadDriver, n)
	for i := range ds {
		url := fmt.Sprintf("ws://%s/ws?i=%d", srv, i)
		if stall[i] {
			url += "&stall"
		}
		c, err := dialWS(context.Background(), client, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		ds[i] = &loadDriver{i: i, conn: c, path: pathOf(i, stations)}
		go readLoad(ds[i], cnt)
	}
	t.Cleanup(func() { closeAll(ds) })
	return ds
}

// fixFormat is appendFix's format.
var fixFormat = regexp.MustCompile(`^\{"type":"location","lat":-?[0-9]+\.[0-9]{6},"lng":-?[0-9]+\.[0-9]{6},"at":"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z","speed_mps":8\.0\}$`)

// TestDriveSendsEverySocketEvenly drives 300 sockets at 10 fixes/s for
// about a second: every socket gets every fix, about one interval apart,
// in the API's format, and nothing is late.
func TestDriveSendsEverySocketEvenly(t *testing.T) {
	rec := newRecorder()
	srv := httptest.NewServer(rec)
	defer srv.Close()
	defer close(rec.stop)
	cnt := &counters{errCodes: map[string]int64{}}
	const n, interval, run = 300, 100 * time.Millisecond, 1050 * time.Millisecond
	ds := openDrivers(t, srv.Client(), strings.TrimPrefix(srv.URL, "http://"), n, nil, cnt)

	ctx, cancel := context.WithTimeout(context.Background(), run)
	defer cancel()
	t0 := time.Now()
	drive(ctx, ds, interval, t0, cnt)
	time.Sleep(100 * time.Millisecond) // let the server read the last ones

	if late, errs := cnt.late.Load(), cnt.sendErrs.Load(); late != 0 || errs != 0 {
		t.Errorf("late %d, send errors %d; want none", late, errs)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var total int64
	for i := range n {
		got := rec.got[fmt.Sprint(i)]
		total += int64(len(got))
		if len(got) < 10 || len(got) > 11 {
			t.Errorf("socket %d: %d fixes in %s at one per %s", i, len(got), run, interval)
			continue
		}
		for k, g := range got {
			if !fixFormat.MatchString(g.raw) {
				t.Fatalf("socket %d fix %d: %s", i, k, g.raw)
			}
			// Where the driver's path is at the fix's time (to the
			// rounding of the last digit: the fix's time has lost the
			// monotonic clock reading the load program used).
			lat, lng := ds[i].path.at(g.fix.At.Sub(t0).Seconds())
			if math.Abs(g.fix.Lat-lat) > 2e-6 || math.Abs(g.fix.Lng-lng) > 2e-6 {
				t.Fatalf("socket %d fix %d: %s; want lat %.6f lng %.6f", i, k, g.raw, lat, lng)
			}
			if k == 0 {
				continue
			}
			// The fixes' own times: one interval apart, give or take a
			// send slot and the machine's scheduling.
			if gap := g.fix.At.Sub(got[k-1].fix.At); gap < interval-30*time.Millisecond || gap > interval+30*time.Millisecond {
				t.Errorf("socket %d: fixes %d and %d are %s apart; want about %s", i, k-1, k, gap, interval)
			}
		}
	}
	if sent := cnt.sent.Load(); sent != total {
		t.Errorf("sent %d, the server got %d", sent, total)
	}
}

// TestDriveClosesAStuckSocket: a socket the server never reads fills its
// buffers and its write blocks; the watchdog closes it after writeTimeout,
// which counts a send error, and a socket of another sender keeps its
// pace meanwhile.
func TestDriveClosesAStuckSocket(t *testing.T) {
	defer func(w, tick time.Duration) { writeTimeout, watchdogTick = w, tick }(writeTimeout, watchdogTick)
	writeTimeout, watchdogTick = 300*time.Millisecond, 50*time.Millisecond

	// Small socket buffers on both ends, so the stalled socket's buffers
	// fill after a few dozen fixes.
	small := func(_, _ string, c syscall.RawConn) error {
		var err error
		_ = c.Control(func(fd uintptr) {
			err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048)
			if err == nil {
				err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, 2048)
			}
		})
		return err
	}
	ln, err := (&net.ListenConfig{Control: small}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	srv := httptest.NewUnstartedServer(rec)
	srv.Listener = ln
	srv.Start()
	defer srv.Close()
	defer close(rec.stop)
	client := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{Control: small}).DialContext}}
	cnt := &counters{errCodes: map[string]int64{}}
	ds := openDrivers(t, client, ln.Addr().String(), 2, map[int]bool{0: true}, cnt)

	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	drive(ctx, ds, 2*time.Millisecond, t0, cnt)
	if took := time.Since(t0); took > 2*time.Second {
		t.Errorf("drive took %s after a 1.5 s run", took)
	}
	if errs := cnt.sendErrs.Load(); errs != 1 {
		t.Errorf("send errors %d; want 1, the stalled socket's", errs)
	}
	if !ds[0].dead.Load() || ds[1].dead.Load() {
		t.Errorf("stalled socket dead %v, the other %v; want true, false", ds[0].dead.Load(), ds[1].dead.Load())
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if got := len(rec.got["1"]); got < 500 {
		t.Errorf("the other socket sent %d fixes in 1.5 s at one per 2 ms; want about 750", got)
	}
}
