package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// account is a signed-up LastMile user.
type account struct {
	ID    string
	Token string
}

// lastMile runs ./cmd/lastmile as a separate process on a private Postgres
// in dir, and talks to it over its public API only.
type lastMile struct {
	bin, dir, log string
	addr, metrics string // metrics: where /metrics is served
	flags         []string
	xff           bool // no --signup-limit flag: vary X-Forwarded-For instead
	client        *http.Client
	stderr        io.Writer

	drivers, riders, trials []account // trials: driver, rider, driver, rider, ...
	routes                  []string  // active route of each driver
	nextTrial               atomic.Int64
	signups                 atomic.Int64
	runID                   string
}

// buildLastMile builds the server and learns which flags it has.
func buildLastMile(ctx context.Context, repo, tmp string, stderr io.Writer) (*lastMile, error) {
	bin := filepath.Join(tmp, "lastmile")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/lastmile")
	cmd.Dir = repo
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("build ./cmd/lastmile in %s: %w", repo, err)
	}
	help, _ := exec.CommandContext(ctx, bin, "--help").CombinedOutput()
	lm := &lastMile{
		bin: bin, dir: filepath.Join(tmp, "lastmile-data"), log: filepath.Join(tmp, "lastmile.log"),
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64}},
		stderr: stderr, runID: strconv.FormatInt(time.Now().Unix(), 36),
	}
	has := func(flag string) bool { return bytes.Contains(help, []byte("-"+flag)) }
	lm.flags = []string{"--log-level", "warn", "--log-format", "json"}
	if has("signup-limit") {
		lm.flags = append(lm.flags, "--signup-limit", "0")
	} else {
		lm.xff = true
		lm.flags = append(lm.flags, "--trusted-proxies", "127.0.0.1/32")
	}
	if has("metrics-addr") {
		lm.flags = append(lm.flags, "--metrics-addr", "") // filled in at start
	}
	return lm, nil
}

// start runs the server on a fresh port and waits for /readyz.
func (lm *lastMile) start(ctx context.Context) (*proc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	lm.addr, lm.metrics = addr, addr
	args := []string{"serve", "--addr", addr, "--data", lm.dir}
	for i := 0; i < len(lm.flags); i++ {
		args = append(args, lm.flags[i])
		if lm.flags[i] == "--metrics-addr" {
			if lm.metrics, err = freeAddr(); err != nil {
				return nil, err
			}
			args = append(args, lm.metrics)
			i++
		}
	}
	logw, err := os.OpenFile(lm.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	p, err := startProc(lm.bin, args, nil, logw, nil)
	if err != nil {
		logw.Close()
		return nil, err
	}
	go func() { <-p.done; logw.Close() }()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if getJSON(ctx, lm.client, "http://"+addr+"/readyz", nil) == nil {
			return p, nil
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("lastmile exited at start (%v); see %s", p.err, lm.log)
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.stop()
			return nil, fmt.Errorf("lastmile not ready within 2 minutes; see %s", lm.log)
		}
		sleep(ctx, 100*time.Millisecond)
	}
}

// postgresMeter measures the CPU time of the private Postgres.
func (lm *lastMile) postgresMeter() *treeMeter {
	return newTreeMeter(func() (int, error) { return postmasterPID(filepath.Join(lm.dir, "pg")) })
}

// scrape reads the server's /metrics into name{labels} → value.
func (lm *lastMile) scrape(ctx context.Context) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+lm.metrics+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := lm.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 64<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "lastmile_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m, sc.Err()
}

// fixesAccepted reads lastmile_location_fixes_total by result, and the
// server's own view of matching and delivery.
func (lm *lastMile) fixesAccepted(ctx context.Context) (accepted, rejected float64, view map[string]float64, err error) {
	m, err := lm.scrape(ctx)
	if err != nil {
		return 0, 0, nil, err
	}
	view = map[string]float64{}
	for k, v := range m {
		switch {
		case k == `lastmile_location_fixes_total{result="accepted"}`:
			accepted = v
		case strings.HasPrefix(k, "lastmile_location_fixes_total{"):
			rejected += v
		case strings.HasPrefix(k, "lastmile_matching_transactions_total{"),
			k == "lastmile_location_approaches_total", k == "lastmile_location_positions_written_total",
			k == "lastmile_matching_approaches_dropped_total", k == "lastmile_matching_approaches_received_total",
			strings.HasPrefix(k, "lastmile_matching_approach_to_commit_seconds_"), strings.HasPrefix(k, "lastmile_notify_delivery_seconds_"):
			if !strings.Contains(k, "_bucket") {
				view[k] = v
			}
		}
	}
	return accepted, rejected, view, nil
}

// do sends one API request; out receives the JSON answer.
func (lm *lastMile) do(ctx context.Context, method, path, token string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+lm.addr+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if lm.xff && strings.HasSuffix(path, "/auth/signup") {
		n := lm.signups.Add(1)
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("10.%d.%d.%d", n>>16&255, n>>8&255, n&255))
	}
	resp, err := lm.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// stations lists the catalog.
func (lm *lastMile) stations(ctx context.Context) ([]station, error) {
	var all []station
	cursor := ""
	for range 1000 { // pages, following next_cursor when the server pages
		var st struct {
			Stations   []station `json:"stations"`
			NextCursor string    `json:"next_cursor"`
		}
		u := "http://" + lm.addr + "/api/v1/stations"
		if cursor != "" {
			u += "?cursor=" + url.QueryEscape(cursor)
		}
		if err := getJSON(ctx, lm.client, u, &st); err != nil {
			return nil, err
		}
		all = append(all, st.Stations...)
		if cursor = st.NextCursor; cursor == "" {
			return all, nil
		}
	}
	return nil, errors.New("the station list does not end")
}

// checkCatalog makes sure the server's catalog holds stations exactly
// where the load paths expect them (same id, position and radius), and
// nothing else.
func (lm *lastMile) checkCatalog(ctx context.Context, want []station) error {
	got, err := lm.stations(ctx)
	if err != nil {
		return err
	}
	byID := map[string]station{}
	for _, s := range got {
		byID[s.ID] = s
	}
	for _, w := range want {
		g, ok := byID[w.ID]
		if !ok || math.Abs(g.Lat-w.Lat) > 1e-5 || math.Abs(g.Lng-w.Lng) > 1e-5 || g.RadiusM != w.RadiusM {
			return fmt.Errorf("station %s: the server has %+v, the load expects %+v", w.ID, g, w)
		}
	}
	if len(got) != len(want) {
		return fmt.Errorf("the server has %d stations, the load expects %d", len(got), len(want))
	}
	return nil
}

// signUp creates n accounts of role, conc at a time, over the API.
func (lm *lastMile) signUp(ctx context.Context, role, prefix string, n, conc int) ([]account, error) {
	out := make([]account, n)
	err := parallel(ctx, n, conc, func(ctx context.Context, i int) error {
		var res struct {
			Token string `json:"token"`
			User  struct {
				ID string `json:"id"`
			} `json:"user"`
		}
		err := lm.do(ctx, http.MethodPost, "/api/v1/auth/signup", "", map[string]string{
			"email": fmt.Sprintf("%s-%d@bench.test", prefix, i), "password": "bench password " + prefix,
			"name": fmt.Sprintf("Bench %s %d", role, i), "role": role,
		}, &res)
		out[i] = account{ID: res.User.ID, Token: res.Token}
		if (i+1)%1000 == 0 {
			logf(lm.stderr, "lastmile: %d of %d %ss signed up", i+1, n, role)
		}
		return err
	})
	return out, err
}

// allAreas lists every area of the catalog, in catalog order.
func allAreas(stations []station) []string {
	var out []string
	for _, s := range stations {
		for _, a := range s.Areas {
			out = append(out, a.ID)
		}
	}
	return out
}

// destination is the k-th destination for a route or request at st: one
// of the station's own areas, or of the catalog's when it has none.
func destination(st station, k int, areas []string) string {
	if len(st.Areas) > 0 {
		return st.Areas[k%len(st.Areas)].ID
	}
	return areas[k%len(areas)]
}

// publishRoutes gives drivers 0..n-1 a route through their path's
// station (3 seats), cancelling the route they had.
func (lm *lastMile) publishRoutes(ctx context.Context, n, conc int, stations []station) error {
	areas := allAreas(stations)
	if len(lm.routes) < n {
		lm.routes = append(lm.routes, make([]string, n-len(lm.routes))...)
	}
	return parallel(ctx, n, conc, func(ctx context.Context, i int) error {
		d := lm.drivers[i]
		if lm.routes[i] != "" {
			if err := lm.do(ctx, http.MethodPost, "/api/v1/routes/"+lm.routes[i]+"/cancel", d.Token, nil, nil); err != nil {
				return err
			}
		}
		st := stations[i%len(stations)]
		var r struct {
			ID string `json:"id"`
		}
		err := lm.do(ctx, http.MethodPost, "/api/v1/routes", d.Token, map[string]any{
			"station_ids": []string{st.ID}, "destination_area_id": destination(st, i/len(stations), areas), "seats": 3,
		}, &r)
		lm.routes[i] = r.ID
		return err
	})
}

// requestRides makes riders from..to-1 wait at the stations, one each,
// arriving 40 to 60 minutes from now: waiting for the same destinations
// as the load drivers' routes, so every approach queries them, but not
// yet eligible (ETA plus the 5-minute grace), so they keep waiting
// through the whole run.
func (lm *lastMile) requestRides(ctx context.Context, from, to, conc int, stations []station) error {
	areas := allAreas(stations)
	now := time.Now()
	return parallel(ctx, to-from, conc, func(ctx context.Context, k int) error {
		i := from + k
		st := stations[i%len(stations)]
		at := now.Add(40*time.Minute + time.Duration(i%1200)*time.Second)
		return lm.do(ctx, http.MethodPost, "/api/v1/ride-requests", lm.riders[i].Token, map[string]any{
			"station_id": st.ID, "destination_area_id": destination(st, i/len(stations), areas),
			"arrival_time": at.UTC().Format(time.RFC3339),
		}, nil)
	})
}

// importStations adds stations to the catalog with `lastmile stations
// import` of a generated stops.txt; the server must be stopped.
func (lm *lastMile) importStations(ctx context.Context, extra []station, tmp string) error {
	var b strings.Builder
	b.WriteString("stop_id,stop_name,stop_lat,stop_lon,location_type\n")
	for _, s := range extra {
		fmt.Fprintf(&b, "%s,Bench %s,%.6f,%.6f,1\n", s.ID, s.ID, s.Lat, s.Lng)
	}
	file := filepath.Join(tmp, "stops.txt")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, lm.bin, "stations", "import", "--data", lm.dir, file)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("lastmile stations import: %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

func (lm *lastMile) dial(ctx context.Context, token string) (*websocket.Conn, error) {
	return dialWS(ctx, lm.client, "ws://"+lm.addr+"/api/v1/ws", http.Header{"Authorization": {"Bearer " + token}})
}

type wsMsg struct {
	Type   string          `json:"type"`
	Kind   string          `json:"kind"`
	Code   string          `json:"code"`
	Driver string          `json:"driver"`
	Data   json.RawMessage `json:"data"`
}

// trial measures one crossing: a fresh rider waits at a station (party of
// 4, arriving in a minute: only a 4-seat route fits, so no load driver
// takes it), a fresh driver publishes a 4-seat route through it, sends a
// fix outside the trigger radius and, lead later, one inside; the result
// is the time from sending that fix to ride.matched on the rider's socket.
func (lm *lastMile) trial(ctx context.Context, st station, k int, lead, timeout time.Duration) (float64, string, error) {
	i := int(lm.nextTrial.Add(1) - 1)
	if 2*i+1 >= len(lm.trials) {
		return 0, "no_accounts", errors.New("out of trial accounts")
	}
	drv, rdr := lm.trials[2*i], lm.trials[2*i+1]
	dest := destination(st, k/9, nil)

	rws, err := lm.dial(ctx, rdr.Token)
	if err != nil {
		return 0, "dial", err
	}
	defer rws.CloseNow()
	dws, err := lm.dial(ctx, drv.Token)
	if err != nil {
		return 0, "dial", err
	}
	defer dws.CloseNow()
	matched := make(chan string, 1)
	go func() {
		for {
			_, b, err := rws.Read(context.Background())
			if err != nil {
				return
			}
			var m wsMsg
			if json.Unmarshal(b, &m) != nil || m.Kind != "ride.matched" {
				continue
			}
			var d struct {
				Driver struct {
					ID string `json:"id"`
				} `json:"driver"`
			}
			_ = json.Unmarshal(m.Data, &d)
			select {
			case matched <- d.Driver.ID:
			default:
			}
		}
	}()
	rejected := make(chan string, 8)
	go func() {
		for {
			_, b, err := dws.Read(context.Background())
			if err != nil {
				return
			}
			var m wsMsg
			if json.Unmarshal(b, &m) == nil && m.Type == "error" {
				select {
				case rejected <- m.Code:
				default:
				}
			}
		}
	}()
	var route, req struct {
		ID string `json:"id"`
	}
	if err := lm.do(ctx, http.MethodPost, "/api/v1/routes", drv.Token, map[string]any{
		"station_ids": []string{st.ID}, "destination_area_id": dest, "seats": 4,
	}, &route); err != nil {
		return 0, "route", err
	}
	if err := lm.do(ctx, http.MethodPost, "/api/v1/ride-requests", rdr.Token, map[string]any{
		"station_id": st.ID, "destination_area_id": dest, "party_size": 4,
		"arrival_time": time.Now().Add(time.Minute).UTC().Format(time.RFC3339),
	}, &req); err != nil {
		return 0, "request", err
	}
	ok := false
	defer func() {
		if !ok { // leave nothing waiting for the next trials
			cctx, c := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer c()
			_ = lm.do(cctx, http.MethodPost, "/api/v1/ride-requests/"+req.ID+"/cancel", rdr.Token, nil, nil)
			_ = lm.do(cctx, http.MethodPost, "/api/v1/routes/"+route.ID+"/cancel", drv.Token, nil, nil)
		}
	}()
	send := func(distM float64, at time.Time) error {
		lat, lng := pointSouth(st, distM)
		wctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		return dws.Write(wctx, websocket.MessageText, appendFix(nil, lat, lng, at, 10))
	}
	// Outside the radius 25 s ago, so the crossing 300 m on is plausible.
	if err := send(st.RadiusM+200, time.Now().Add(-25*time.Second)); err != nil {
		return 0, "send", err
	}
	sleep(ctx, lead)
	select {
	case id := <-matched:
		return 0, "premature_match", fmt.Errorf("ride.matched (driver %s) before the crossing fix", id)
	case code := <-rejected:
		return 0, "fix_rejected", fmt.Errorf("first fix refused: %s", code)
	default:
	}
	sent := time.Now()
	if err := send(st.RadiusM-100, sent); err != nil {
		return 0, "send", err
	}
	wait := time.NewTimer(timeout)
	defer wait.Stop()
	select {
	case id := <-matched:
		got := time.Since(sent)
		if id != drv.ID {
			return 0, "wrong_driver", fmt.Errorf("at %s: matched to driver %s, want %s", st.ID, id, drv.ID)
		}
		ok = true
		_ = send(st.RadiusM+300, sent.Add(15*time.Second)) // leave, so it stops approaching
		return float64(got.Microseconds()) / 1000, "", nil
	case code := <-rejected:
		return 0, "fix_rejected", fmt.Errorf("crossing fix refused: %s", code)
	case <-wait.C:
		return 0, "timeout", fmt.Errorf("at %s/%s: no ride.matched within %s", st.ID, dest, timeout)
	case <-ctx.Done():
		return 0, "cancelled", ctx.Err()
	}
}

// parallel runs f(0..n-1), conc at a time; it stops at the first error.
func parallel(ctx context.Context, n, conc int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for i := range jobs {
				if err := f(ctx, i); err != nil {
					cancel(fmt.Errorf("item %d: %w", i, err))
				}
			}
		})
	}
	for i := range n {
		select {
		case jobs <- i:
			continue
		case <-ctx.Done():
		}
		break
	}
	close(jobs)
	wg.Wait()
	return context.Cause(ctx)
}

// accounts counts the users a run needs, as kept in a template.
type accounts struct {
	Drivers    int `json:"drivers"`
	Riders     int `json:"riders"`
	TrialPairs int `json:"trial_pairs"`
}

// template is what -accounts keeps beside the data folder.
type template struct {
	Need    accounts  `json:"need"`
	Drivers []account `json:"drivers"`
	Riders  []account `json:"riders"`
	Trials  []account `json:"trials"`
}

// saveTemplate copies the stopped server's data folder and the accounts
// to dir, replacing what was there.
func (lm *lastMile) saveTemplate(ctx context.Context, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data := filepath.Join(dir, "lastmile-data")
	if err := os.RemoveAll(data); err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, "cp", "-a", lm.dir, data).CombinedOutput(); err != nil {
		return fmt.Errorf("copy the data folder: %w: %s", err, out)
	}
	b, err := json.Marshal(template{
		Need:    accounts{Drivers: len(lm.drivers), Riders: len(lm.riders), TrialPairs: len(lm.trials) / 2},
		Drivers: lm.drivers, Riders: lm.riders, Trials: lm.trials,
	})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "accounts.json"), b, 0o600)
}

// fromTemplate copies the data folder and accounts kept in dir, if they
// hold at least need; false when they do not (or dir is empty).
func (lm *lastMile) fromTemplate(ctx context.Context, dir string, need accounts) (bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, "accounts.json"))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var t template
	if err := json.Unmarshal(b, &t); err != nil {
		return false, fmt.Errorf("%s/accounts.json: %w", dir, err)
	}
	if t.Need.Drivers < need.Drivers || t.Need.Riders < need.Riders || t.Need.TrialPairs < need.TrialPairs {
		return false, nil
	}
	if out, err := exec.CommandContext(ctx, "cp", "-a", filepath.Join(dir, "lastmile-data"), lm.dir).CombinedOutput(); err != nil {
		return false, fmt.Errorf("copy the data folder: %w: %s", err, out)
	}
	lm.drivers, lm.riders, lm.trials = t.Drivers, t.Riders, t.Trials
	return true, nil
}
