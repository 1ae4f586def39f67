package notify

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the numbers an operator watches for event delivery.
type metrics struct {
	sockets           prometheus.Gauge
	appended          prometheus.Counter
	delivered         *prometheus.CounterVec
	replay            prometheus.Histogram
	latency           prometheus.Histogram
	closes            *prometheus.CounterVec
	reconnects        prometheus.Counter
	disposableDropped prometheus.Counter
	acksDropped       prometheus.Counter
	pushes            *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		sockets: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lastmile_notify_sockets_open",
			Help: "WebSockets open on this replica.",
		}),
		appended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lastmile_notify_events_appended_total",
			Help: "Events appended by this replica (counted before commit, so rolled-back ones are included).",
		}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lastmile_notify_events_delivered_total",
			Help: "Messages written to sockets, by stream: stored (numbered events) or disposable.",
		}, []string{"stream"}),
		replay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lastmile_notify_replay_events",
			Help:    "Events replayed to a socket that connected with since.",
			Buckets: []float64{0, 1, 5, 20, 100, 500, 2000, 10000},
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lastmile_notify_delivery_seconds",
			Help:    "Time from appending a stored event to writing it to a live socket.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		closes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lastmile_notify_socket_closes_total",
			Help: "Sockets closed by the server, by reason (slow: a client too slow for its events).",
		}, []string{"reason"}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lastmile_notify_listener_reconnects_total",
			Help: "Times the listening Postgres connection was lost and opened again.",
		}),
		disposableDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lastmile_notify_disposable_dropped_total",
			Help: "Disposable messages dropped because a socket's buffer was more than half full.",
		}),
		acksDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lastmile_notify_push_acks_dropped_total",
			Help: "Deliveries of push-marked events not reported to the push outbox (the event may be pushed too).",
		}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lastmile_notify_pushes_total",
			Help: "Push attempts by result: sent, retry, gone (subscription deleted), rejected, gave_up.",
		}, []string{"result"}),
	}
	for _, c := range []prometheus.Collector{m.sockets, m.appended, m.delivered, m.replay, m.latency,
		m.closes, m.reconnects, m.disposableDropped, m.acksDropped, m.pushes} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register notify metrics: %w", err)
		}
	}
	return m, nil
}
