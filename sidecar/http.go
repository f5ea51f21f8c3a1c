package sidecar

import (
	"context"
	"crypto/subtle"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/deltaview/deltaview/change"
	"github.com/deltaview/deltaview/decoder"
	"github.com/deltaview/deltaview/writer"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// ops is what `run` serves on --http-addr: Prometheus metrics, a liveness
// and a readiness probe.
type ops struct {
	reg *prometheus.Registry

	lagBytes, lagSeconds *prometheus.GaugeVec
	viewUp               *prometheus.GaugeVec
	rows                 *prometheus.CounterVec
	transactions         prometheus.Counter
	applySeconds         prometheus.Histogram
	retries              prometheus.Counter
	retained             prometheus.Gauge

	// streaming is true while the stream runs; lagged is the largest lag
	// in bytes seen by the last check (-1: not known yet).
	streaming atomic.Bool
	// waiting is true while another process holds the stream's lease.
	waiting  atomic.Bool
	lagged   atomic.Int64
	readyLag int64
	// target is the database the change streams read; notifyChannel
	// tells them when to look; feeds is what they share.
	target, notifyChannel string
	feeds                 *feeds
	// changesWrite bounds each write to a change stream's client,
	// changesSnapshot a stream's snapshot (--changes-write-timeout,
	// --changes-snapshot-timeout).
	changesWrite, changesSnapshot time.Duration
	// changesToken, if set, is the bearer token change streams require;
	// changesOrigin the web origin allowed to read them.
	changesToken, changesOrigin string

	mu      sync.Mutex
	samples []lsnSample // source positions seen, oldest first
}

// lsnSample is the source's WAL position at a moment.
type lsnSample struct {
	lsn change.LSN
	at  time.Time
}

func newOps(readyLag int64) *ops {
	o := &ops{reg: prometheus.NewRegistry(), readyLag: readyLag}
	o.lagged.Store(-1)
	o.lagBytes = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "deltaview", Name: "view_lag_bytes",
		Help: "How far the source's WAL is ahead of the position the view reflects."}, []string{"view"})
	o.lagSeconds = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "deltaview", Name: "view_lag_seconds",
		Help: "How long ago the source reached a position the view does not reflect yet (0 when caught up)."}, []string{"view"})
	o.viewUp = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "deltaview", Name: "view_running",
		Help: "1 while the view is maintained, 0 when it failed or is being built."}, []string{"view"})
	o.rows = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "deltaview", Name: "view_rows_total",
		Help: "Rows of the view's table inserted, updated and deleted."}, []string{"view", "op"})
	o.transactions = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "deltaview", Name: "applied_transactions_total",
		Help: "Source transactions applied to the target."})
	o.applySeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "deltaview", Name: "apply_duration_seconds",
		Help: "Time to apply and commit one target transaction.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 15)})
	o.retries = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "deltaview", Name: "errors_total",
		Help: "Interruptions of the stream (a server down, restarting or refusing), each retried."})
	o.retained = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "deltaview", Name: "slot_retained_wal_bytes",
		Help: "WAL the source keeps for the replication slot."})
	for _, c := range []prometheus.Collector{o.lagBytes, o.lagSeconds, o.viewUp, o.rows, o.transactions, o.applySeconds,
		o.retries, o.retained, loadCollector{}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		o.reg.MustRegister(c)
	}
	return o
}

// loadCollector reports the snapshot copies under way (writer.Loading),
// read as they are when scraped.
type loadCollector struct{}

var (
	loadRows = prometheus.NewDesc("deltaview_snapshot_rows", "Rows copied so far by a snapshot of a view (or of a table's copy) under way.",
		[]string{"view"}, nil)
	loadTotal = prometheus.NewDesc("deltaview_snapshot_estimated_rows", "The source planner's estimate of the rows a snapshot under way copies.",
		[]string{"view"}, nil)
)

func (loadCollector) Describe(ch chan<- *prometheus.Desc) { ch <- loadRows; ch <- loadTotal }

func (loadCollector) Collect(ch chan<- prometheus.Metric) {
	for _, l := range writer.Loading() {
		ch <- prometheus.MustNewConstMetric(loadRows, prometheus.GaugeValue, float64(l.Rows), l.What)
		if l.Total > 0 {
			ch <- prometheus.MustNewConstMetric(loadTotal, prometheus.GaugeValue, float64(l.Total), l.What)
		}
	}
}

// committed records a committed batch (writer.Config.Committed).
func (o *ops) committed(took time.Duration, transactions int, rows map[string][3]int64) {
	o.applySeconds.Observe(took.Seconds())
	o.transactions.Add(float64(transactions))
	for view, n := range rows {
		for i, op := range []string{"insert", "update", "delete"} {
			if n[i] > 0 {
				o.rows.WithLabelValues(view, op).Add(float64(n[i]))
			}
		}
	}
}

// serve serves the endpoints on addr until ctx ends.
func (o *ops) serve(ctx context.Context, addr string, log *zap.Logger) error {
	f, err := newFeeds(ctx, o.target, o.notifyChannel, o.changesWrite, o.changesSnapshot, log)
	if err != nil {
		return err
	}
	defer f.pool.Close()
	o.feeds = f
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if why := o.notReady(); why != "" {
			http.Error(w, why, http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("GET /views/{name}/changes", func(w http.ResponseWriter, r *http.Request) {
		if o.changesOrigin != "" {
			w.Header().Set("Access-Control-Allow-Origin", o.changesOrigin)
			w.Header().Set("Vary", "Origin")
		}
		if !o.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="deltaview"`)
			http.Error(w, "change streams need Authorization: Bearer <token> (--changes-token)", http.StatusUnauthorized)
			return
		}
		o.changes(w, r, log)
	})
	if o.changesOrigin != "" {
		// A browser asks first whether it may send the Authorization header.
		mux.HandleFunc("OPTIONS /views/{name}/changes", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Access-Control-Allow-Origin", o.changesOrigin)
			w.Header().Set("Access-Control-Allow-Methods", "GET")
			w.Header().Set("Access-Control-Allow-Headers", "Authorization")
			w.Header().Set("Vary", "Origin")
			w.WriteHeader(http.StatusNoContent)
		})
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	// Requests end with the server: change streams would hold it open.
	// No WriteTimeout: a change stream lasts; each of its writes has a
	// deadline of its own.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	log.Info("serving metrics and probes", zap.String("addr", ln.Addr().String()))
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// notReady says why deltaview is not ready, or "" when it is: streaming,
// with every running view within the lag threshold.
func (o *ops) notReady() string {
	switch lag := o.lagged.Load(); {
	case o.waiting.Load():
		return "waiting: another deltaview process holds the stream\n"
	case !o.streaming.Load():
		return "not streaming (starting, building views or reconnecting)\n"
	case lag < 0:
		return "lag not measured yet\n"
	case lag > o.readyLag:
		return "behind the source by more than the threshold\n"
	}
	return ""
}

// watchLag measures, every interval until ctx ends, each view's lag behind
// the source and the slot's retained WAL.
func (o *ops) watchLag(ctx context.Context, c Config, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var src, tgt *pgx.Conn
	defer func() {
		for _, conn := range []*pgx.Conn{src, tgt} {
			if conn != nil {
				conn.Close(context.WithoutCancel(ctx))
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		var err error
		if src == nil {
			if src, err = pgx.Connect(ctx, c.Source); err != nil {
				src = nil
				continue
			}
		}
		if tgt == nil {
			if tgt, err = writer.ConnectCatalog(ctx, c.Target); err != nil {
				tgt = nil
				continue
			}
		}
		if err := o.measure(ctx, src, tgt, c.Slot); err != nil {
			src.Close(ctx)
			tgt.Close(ctx)
			src, tgt = nil, nil
		}
	}
}

func (o *ops) measure(ctx context.Context, src, tgt *pgx.Conn, slot string) error {
	now, err := decoder.CurrentLSN(ctx, src)
	if err != nil {
		return err
	}
	if h, err := decoder.Health(ctx, src, slot); err == nil && h.Exists {
		o.retained.Set(float64(h.Retained))
	}
	o.mu.Lock()
	o.samples = append(o.samples, lsnSample{now, time.Now()})
	if len(o.samples) > 600 {
		o.samples = o.samples[len(o.samples)-600:]
	}
	samples := o.samples
	o.mu.Unlock()

	rows, err := tgt.Query(ctx, `SELECT name, status, applied_lsn::text FROM deltaview.views WHERE slot = $1`, slot)
	if err != nil {
		return err
	}
	defer rows.Close()
	worst := int64(0)
	for rows.Next() {
		var name, status string
		var applied *string
		if err := rows.Scan(&name, &status, &applied); err != nil {
			return err
		}
		running := status == "running"
		o.viewUp.WithLabelValues(name).Set(map[bool]float64{true: 1}[running])
		if applied == nil {
			continue
		}
		at, err := pglogrepl.ParseLSN(*applied)
		if err != nil {
			continue
		}
		lag := int64(0)
		if now > at {
			lag = int64(now - at)
		}
		o.lagBytes.WithLabelValues(name).Set(float64(lag))
		// The oldest position seen that the view does not reflect yet.
		seconds := 0.0
		for _, s := range samples {
			if s.lsn > at {
				seconds = time.Since(s.at).Seconds()
				break
			}
		}
		o.lagSeconds.WithLabelValues(name).Set(seconds)
		if running {
			worst = max(worst, lag)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	o.lagged.Store(worst)
	return nil
}

// authorized tells whether a change stream request carries the token, when
// one is required; the comparison takes the same time however much of it
// matches.
func (o *ops) authorized(r *http.Request) bool {
	if o.changesToken == "" {
		return true
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(o.changesToken)) == 1
}
