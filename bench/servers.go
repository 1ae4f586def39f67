package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"
)

// fix is the driver message all three systems receive, as LastMile's
// WebSocket API defines it.
type fix struct {
	Type     string    `json:"type"`
	Lat      float64   `json:"lat"`
	Lng      float64   `json:"lng"`
	At       time.Time `json:"at"`
	SpeedMps float64   `json:"speed_mps"`
}

// haversineM is the great-circle distance in metres.
func haversineM(lat1, lng1, lat2, lng2 float64) float64 {
	const r = 6371008.8
	p1, p2 := lat1*math.Pi/180, lat2*math.Pi/180
	dp, dl := p2-p1, (lng2-lng1)*math.Pi/180
	a := math.Sin(dp/2)*math.Sin(dp/2) + math.Cos(p1)*math.Cos(p2)*math.Sin(dl/2)*math.Sin(dl/2)
	return 2 * r * math.Asin(math.Sqrt(a))
}

// listenAndAnnounce listens on 127.0.0.1 (a free port) and prints the
// address as the first line of stdout, which the orchestrator waits for.
func listenAndAnnounce(ctx context.Context, h http.Handler, stdout io.Writer) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	fmt.Fprintln(stdout, ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx) // hijacked sockets are not waited for
	return nil
}

// statsHandler answers {"fixes": n} for the orchestrator.
func statsHandler(fixes *atomic.Int64) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]int64{"fixes": fixes.Load()})
	}
}

// serveBare is the bare ceiling: accept the socket, decode each fix with
// encoding/json, keep the latest per connection, one haversine to the
// driver's next station (given in the URL). Nothing else.
func serveBare(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("serve-bare", flag.ContinueOnError)
	if err := fs.Parse(args); err != nil {
		return err
	}
	var fixes atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", statsHandler(&fixes))
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		stLat, err1 := strconv.ParseFloat(q.Get("lat"), 64)
		stLng, err2 := strconv.ParseFloat(q.Get("lng"), 64)
		if err := errors.Join(err1, err2); err != nil {
			http.Error(w, "lat and lng of the next station are required", http.StatusBadRequest)
			return
		}
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(64 << 10)
		var latest fix
		var dist float64
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				return
			}
			var f fix
			if json.Unmarshal(b, &f) != nil || f.Type != "location" {
				continue
			}
			latest = f
			dist = haversineM(latest.Lat, latest.Lng, stLat, stLng)
			if dist >= 0 {
				fixes.Add(1)
			}
		}
	})
	return listenAndAnnounce(ctx, mux, stdout)
}

// serveRedis is what a user would build instead: a WebSocket gateway that
// writes every fix to Redis GEO and checks the distance to the driver's
// next station there (GEOADD and GEODIST pipelined, one round trip a fix).
// Entering a station's radius publishes a "near station" message on the
// station's channel; rider sockets subscribe to their station's channel.
func serveRedis(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("serve-redis", flag.ContinueOnError)
	addr := fs.String("redis", "127.0.0.1:6379", "Redis address")
	key := fs.String("key", "bench:fleet", "GEO key holding stations and drivers")
	stationsFile := fs.String("stations", "", "JSON file of stations [{id,lat,lng,radius_m}]")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := os.ReadFile(*stationsFile)
	if err != nil {
		return err
	}
	var stations []station
	if err := json.Unmarshal(b, &stations); err != nil {
		return fmt.Errorf("stations file: %w", err)
	}
	radius := map[string]float64{}
	rdb := redis.NewClient(&redis.Options{Addr: *addr, PoolSize: 64})
	defer rdb.Close()
	if err := rdb.Del(ctx, *key).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	locs := make([]*redis.GeoLocation, 0, len(stations))
	for _, s := range stations {
		radius[s.ID] = s.RadiusM
		locs = append(locs, &redis.GeoLocation{Name: "st:" + s.ID, Longitude: s.Lng, Latitude: s.Lat})
	}
	if err := rdb.GeoAdd(ctx, *key, locs...).Err(); err != nil {
		return fmt.Errorf("redis: load stations: %w", err)
	}

	var fixes atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", statsHandler(&fixes))
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if rider, st := q.Get("rider"), q.Get("station"); rider != "" && st != "" {
			riderSocket(ctx, w, r, rdb, st)
			return
		}
		driver, next := q.Get("driver"), q.Get("next")
		rad, ok := radius[next]
		if driver == "" || !ok {
			http.Error(w, "driver and a known next station are required", http.StatusBadRequest)
			return
		}
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(64 << 10)
		member, stMember := "d:"+driver, "st:"+next
		inside := false
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				return
			}
			var f fix
			if json.Unmarshal(b, &f) != nil || f.Type != "location" {
				continue
			}
			var dist *redis.FloatCmd
			_, err = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				p.GeoAdd(ctx, *key, &redis.GeoLocation{Name: member, Longitude: f.Lng, Latitude: f.Lat})
				dist = p.GeoDist(ctx, *key, member, stMember, "m")
				return nil
			})
			if err != nil {
				continue
			}
			fixes.Add(1)
			d := dist.Val()
			switch {
			case d <= rad && !inside:
				inside = true
				msg := fmt.Sprintf(`{"type":"near_station","driver":%q,"station":%q,"distance_m":%.0f}`, driver, next, d)
				_ = rdb.Publish(ctx, "bench:near:"+next, msg).Err()
			case d > rad:
				inside = false
			}
		}
	})
	return listenAndAnnounce(ctx, mux, stdout)
}

// riderSocket forwards the "near station" messages of one station to a
// rider's socket; it says {"type":"subscribed"} once Redis confirmed.
func riderSocket(ctx context.Context, w http.ResponseWriter, r *http.Request, rdb *redis.Client, st string) {
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ps := rdb.Subscribe(ctx, "bench:near:"+st)
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil {
		return
	}
	go func() { // notices the client going away
		defer cancel()
		for {
			if _, _, err := c.Read(ctx); err != nil {
				return
			}
		}
	}()
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	err = c.Write(wctx, websocket.MessageText, []byte(`{"type":"subscribed"}`))
	wcancel()
	if err != nil {
		return
	}
	msgs := ps.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-msgs:
			if !ok {
				return
			}
			wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
			err := c.Write(wctx, websocket.MessageText, []byte(m.Payload))
			wcancel()
			if err != nil {
				return
			}
		}
	}
}
