package main

import (
	"bufio"
	"container/heap"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// station is a catalog station as LastMile's API lists it.
type station struct {
	ID      string  `json:"id"`
	Lat     float64 `json:"lat"`
	Lng     float64 `json:"lng"`
	RadiusM float64 `json:"radius_m"`
	Areas   []area  `json:"areas,omitempty"`
}

type area struct {
	ID string `json:"id"`
}

// seedStations reads the catalog LastMile seeds on first start.
func seedStations(repo string) ([]station, error) {
	b, err := os.ReadFile(repo + "/internal/station/bengaluru-stations.json")
	if err != nil {
		return nil, err
	}
	var f struct {
		Stations []station `json:"stations"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("seed stations: %w", err)
	}
	return f.Stations, nil
}

// extraStations returns n more stations spread over Bengaluru on a grid,
// the same on every run, with LastMile's default radius.
func extraStations(n int) []station {
	out := make([]station, n)
	side := int(math.Ceil(math.Sqrt(float64(n))))
	for i := range out {
		r, c := i/side, i%side
		out[i] = station{
			ID:  fmt.Sprintf("bench-%03d", i),
			Lat: 12.80 + 0.25*(float64(r)+0.5)/float64(side), Lng: 77.50 + 0.25*(float64(c)+0.5)/float64(side),
			RadiusM: 800,
		}
	}
	return out
}

// path is one load driver's drive: back and forth at speedMps along a
// 4 km chord that passes a station at a lateral offset of 150–750 m, so
// the driver enters and leaves the station's 800 m trigger radius again
// and again but never comes within LastMile's 100 m "reached" distance
// (which would take the station off its route). Every system gets the
// same path for the same driver.
type path struct {
	st             station
	dirN, dirE     float64 // unit vector along the chord
	offN, offE     float64 // lateral offset from the station, metres
	x0             float64 // starting position along the chord, metres
	halfLen, speed float64
}

const speedMps = 8

func pathOf(i int, stations []station) path {
	st := stations[i%len(stations)]
	golden := 0.6180339887498949
	theta := 2 * math.Pi * math.Mod(float64(i)*golden, 1)
	off := 150 + 600*math.Mod(float64(i)*0.7548776662466927, 1)
	return path{
		st: st, dirN: math.Cos(theta), dirE: math.Sin(theta),
		offN: -math.Sin(theta) * off, offE: math.Cos(theta) * off,
		x0: 8000 * math.Mod(float64(i)*0.5698402909980532, 1), halfLen: 2000, speed: speedMps,
	}
}

// at is the position t seconds into the run.
func (p path) at(t float64) (lat, lng float64) {
	s := math.Mod(p.x0+p.speed*t, 4*p.halfLen)
	x := -p.halfLen + s
	if s > 2*p.halfLen {
		x = 3*p.halfLen - s
	}
	n, e := p.offN+x*p.dirN, p.offE+x*p.dirE
	lat = p.st.Lat + n/111195
	lng = p.st.Lng + e/(111195*math.Cos(p.st.Lat*math.Pi/180))
	return lat, lng
}

// pointSouth is the point distM south of s's centre.
func pointSouth(s station, distM float64) (float64, float64) {
	return s.Lat - distM/111195, s.Lng
}

// appendFix writes a location message.
func appendFix(b []byte, lat, lng float64, at time.Time, speed float64) []byte {
	b = append(b, `{"type":"location","lat":`...)
	b = strconv.AppendFloat(b, lat, 'f', 6, 64)
	b = append(b, `,"lng":`...)
	b = strconv.AppendFloat(b, lng, 'f', 6, 64)
	b = append(b, `,"at":"`...)
	b = at.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","speed_mps":`...)
	b = strconv.AppendFloat(b, speed, 'f', 1, 64)
	return append(b, '}')
}

// ---------------------------------------------------------------- sockets

// dialer opens one socket of a system: driver i, or a trial's socket.
type dialer func(ctx context.Context, i int) (*websocket.Conn, error)

func dialWS(ctx context.Context, client *http.Client, url string, header http.Header) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		HTTPClient: client, HTTPHeader: header, CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial: %s: %w", resp.Status, err)
		}
		return nil, err
	}
	c.SetReadLimit(1 << 20)
	return c, nil
}

// counters are the load sockets' cumulative counts.
type counters struct {
	sent, sendErrs, late atomic.Int64
	mu                   sync.Mutex
	errCodes             map[string]int64 // error messages from the server, by code
	closes               int64            // sockets the server closed
}

// loadDriver is one load socket; its sender owns lastAt.
type loadDriver struct {
	i      int
	conn   *websocket.Conn
	path   path
	dead   atomic.Bool
	lastAt time.Time // the time of its latest fix
}

// dialAll opens drivers 0..n-1, dialConc at a time, each with a reader
// that answers pings and counts what the server says.
func dialAll(ctx context.Context, dial dialer, n, conc int, stations []station, cnt *counters) ([]*loadDriver, error) {
	out := make([]*loadDriver, n)
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	var firstErr error
	var once sync.Once
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			var c *websocket.Conn
			var err error
			for attempt := range 3 {
				if c, err = dial(ctx, i); err == nil || ctx.Err() != nil {
					break
				}
				sleep(ctx, time.Duration(attempt+1)*200*time.Millisecond)
			}
			if err != nil {
				once.Do(func() { firstErr = fmt.Errorf("driver %d: %w", i, err) })
				return
			}
			d := &loadDriver{i: i, conn: c, path: pathOf(i, stations)}
			out[i] = d
			go readLoad(d, cnt)
		})
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		closeAll(out)
		return nil, firstErr
	}
	return out, nil
}

// readLoad reads a load socket until it closes.
func readLoad(d *loadDriver, cnt *counters) {
	for {
		_, b, err := d.conn.Read(context.Background())
		if err != nil {
			if !d.dead.Swap(true) {
				cnt.mu.Lock()
				cnt.closes++
				cnt.mu.Unlock()
			}
			return
		}
		if !strings.Contains(string(b), `"type":"error"`) {
			continue
		}
		var m struct {
			Code string `json:"code"`
		}
		_ = json.Unmarshal(b, &m)
		cnt.mu.Lock()
		cnt.errCodes[m.Code]++
		cnt.mu.Unlock()
	}
}

func closeAll(ds []*loadDriver) {
	sem := make(chan struct{}, 500)
	var wg sync.WaitGroup
	for _, d := range ds {
		if d == nil {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			d.dead.Store(true)
			_ = d.conn.CloseNow()
		})
	}
	wg.Wait()
}

// The load program shares the machine's cores with the server it
// measures, so it must cost little per fix. A goroutine and a timer per
// socket, and a context with a timeout per write (coder/websocket arms a
// context.AfterFunc for each such write), cost about as much CPU as the
// write itself. So a few senders share the sockets instead: each owns a
// shard of them, kept in a min-heap by next due send, and sleeps once
// until the earliest; it writes with a context that never ends (for which
// coder/websocket arms nothing), and a watchdog closes a socket whose
// write has been stuck for writeTimeout, as the timeout per write did.

// sendSlot is the senders' clock tick: a sender sleeps to the first whole
// slot at or after its earliest due send, so that the sends due in one
// slot share a wake-up; a send waits for its wake-up less than a slot
// past its due time (plus whatever the scheduler adds).
const sendSlot = time.Millisecond

var (
	// writeTimeout: a write in progress this long (the server is not
	// reading) closes its socket, which ends the write with an error. The
	// watchdog sees it within a tick more.
	writeTimeout = 5 * time.Second
	// watchdogTick is how often the watchdog looks at the senders.
	watchdogTick = time.Second
)

// senderCount is how many senders share n sockets: enough that a stuck
// write, which holds up its sender until the watchdog closes the socket,
// delays only a small share of the sockets; few enough that a wake-up
// usually has several sends to make.
func senderCount(n int) int { return min(n, 8*runtime.GOMAXPROCS(0)) }

// send is a socket's next send, as time since its sender started.
type send struct {
	d  *loadDriver
	at time.Duration
}

// sender sends the fixes of a shard of the sockets. Its goroutine owns q
// and buf; seq and cur tell the watchdog which write is in progress.
type sender struct {
	q   sendQueue
	buf []byte
	seq atomic.Uint64              // odd while a write is in progress
	cur atomic.Pointer[loadDriver] // the socket being written while seq is odd
}

// drive sends every driver's fix every interval until ctx ends, each
// driver starting at an offset that spreads the sockets evenly over the
// interval; t0 is the start of the system's run (the same stream for
// every system).
func drive(ctx context.Context, drivers []*loadDriver, interval time.Duration, t0 time.Time, cnt *counters) {
	if len(drivers) == 0 {
		return
	}
	senders := make([]*sender, senderCount(len(drivers)))
	for k := range senders {
		senders[k] = &sender{}
	}
	for j, d := range drivers {
		offset := time.Duration(math.Mod(float64(d.i)*0.6180339887498949, 1) * float64(interval))
		s := senders[j%len(senders)]
		s.q = append(s.q, send{d: d, at: offset})
	}
	start := time.Now()
	var wg sync.WaitGroup
	for _, s := range senders {
		heap.Init(&s.q)
		wg.Go(func() { s.run(ctx, start, interval, t0, cnt) })
	}
	// The watchdog outlives ctx: a sender stuck in a write sees ctx only
	// once the watchdog has closed that socket.
	done := make(chan struct{})
	var wd sync.WaitGroup
	wd.Go(func() { watchdog(done, senders) })
	wg.Wait()
	close(done)
	wd.Wait()
}

// run makes the shard's sends, each when due, until ctx ends. A send
// that has not gone out by the time its next one is due is late: the
// ticks it missed are counted and skipped, keeping the socket's phase.
func (s *sender) run(ctx context.Context, start time.Time, interval time.Duration, t0 time.Time, cnt *counters) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	// now is read once per wake-up and once after each write: that
	// reading both checks the write for lateness and times the next fix.
	now := time.Now()
	for len(s.q) > 0 {
		next := &s.q[0]
		if elapsed := now.Sub(start); next.at > elapsed {
			wake := (next.at + sendSlot - 1) / sendSlot * sendSlot
			t.Reset(wake - elapsed)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			now = time.Now()
			continue
		}
		select {
		case <-ctx.Done():
			return
		default:
		}
		d := next.d
		if d.dead.Load() {
			heap.Pop(&s.q) // a socket that has closed
			continue
		}
		at := now
		if !at.After(d.lastAt) {
			at = d.lastAt.Add(time.Millisecond)
		}
		d.lastAt = at
		lat, lng := d.path.at(at.Sub(t0).Seconds())
		s.buf = appendFix(s.buf[:0], lat, lng, at, speedMps)
		s.cur.Store(d)
		s.seq.Add(1)
		// Not ctx: cancelling a write closes the socket. A stuck write is
		// the watchdog's.
		err := d.conn.Write(context.Background(), websocket.MessageText, s.buf)
		s.seq.Add(1)
		if err != nil {
			cnt.sendErrs.Add(1)
		} else {
			cnt.sent.Add(1)
		}
		now = time.Now()
		next.at += interval
		if elapsed := now.Sub(start); elapsed > next.at {
			missed := (elapsed-next.at)/interval + 1
			cnt.late.Add(int64(missed))
			next.at += missed * interval
		}
		heap.Fix(&s.q, 0)
	}
}

// sendQueue is a min-heap of sends by due time (container/heap).
type sendQueue []send

func (q sendQueue) Len() int           { return len(q) }
func (q sendQueue) Less(i, j int) bool { return q[i].at < q[j].at }
func (q sendQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *sendQueue) Push(x any)        { *q = append(*q, x.(send)) }
func (q *sendQueue) Pop() any {
	old := *q
	n := len(old) - 1
	x := old[n]
	old[n] = send{}
	*q = old[:n]
	return x
}

// watchdog closes the socket of any sender's write that has been in
// progress for writeTimeout, until done.
func watchdog(done <-chan struct{}, senders []*sender) {
	type seen struct {
		seq   uint64
		since time.Time // when seq was first seen
	}
	last := make([]seen, len(senders))
	t := time.NewTicker(watchdogTick)
	defer t.Stop()
	for {
		var now time.Time
		select {
		case <-done:
			return
		case now = <-t.C:
		}
		for k, s := range senders {
			seq := s.seq.Load()
			if seq%2 == 0 {
				continue // no write in progress
			}
			if seq != last[k].seq {
				last[k] = seen{seq: seq, since: now}
				continue
			}
			// The same write as at least writeTimeout ago? cur is stored
			// before seq turns odd, so it is that write's socket if seq
			// has not moved on since.
			if d := s.cur.Load(); now.Sub(last[k].since) >= writeTimeout && s.seq.Load() == seq {
				_ = d.conn.CloseNow()
			}
		}
	}
}

// ---------------------------------------------------------------- processes

// proc is a server process this program started.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// startProc starts a server; its stdout lines go to lines (if not nil),
// its stderr to logw.
func startProc(name string, args []string, env []string, logw io.Writer, lines chan<- string) (*proc, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = logw
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if lines != nil {
				select {
				case lines <- sc.Text():
				default:
				}
			} else {
				fmt.Fprintln(logw, sc.Text())
			}
		}
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop asks the process to end (SIGTERM) and kills it after 30 s.
func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// freeAddr returns a free 127.0.0.1 port.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// getJSON fetches url into out.
func getJSON(ctx context.Context, client *http.Client, url string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(out)
}
