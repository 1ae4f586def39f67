package station

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/geo"
	"github.com/lastmile/lastmile/internal/postgres"
	"github.com/lastmile/lastmile/internal/station/internal/stationdb"
	"github.com/lastmile/lastmile/internal/text"
)

// Limits on a GTFS feed ImportGTFS accepts.
const (
	// MaxFeedBytes bounds the file, and stops.txt once unzipped.
	MaxFeedBytes = 50 << 20
	// MaxFeedRows bounds the rows of stops.txt, stations or not.
	MaxFeedRows = 100_000
	// MaxRowBytes bounds one row of stops.txt (quoted line breaks
	// included), so that one endless row cannot hold the feed in memory.
	MaxRowBytes = 64 << 10
	// MaxStopIDLen bounds a stop_id (GTFS ids are short).
	MaxStopIDLen = 255
)

type feedLimits struct {
	bytes int64
	rows  int
}

var defaultFeedLimits = feedLimits{bytes: MaxFeedBytes, rows: MaxFeedRows}

// ImportResult says what an import found and what it changed.
type ImportResult struct {
	// Stations is how many stations the feed holds.
	Stations int `json:"stations"`
	// Created, Updated and Unchanged add up to Stations.
	Created   int `json:"created"`
	Updated   int `json:"updated"`
	Unchanged int `json:"unchanged"`
	// Ignored counts the rows of stops.txt that are not stations:
	// platforms, entrances, generic nodes, boarding areas (and, in a feed
	// with stations, the stops outside them).
	Ignored int `json:"ignored"`
}

// ImportGTFSFile imports the GTFS feed in the file at name: a .zip holding
// stops.txt, or a bare stops.txt. See ImportGTFS.
func (s *Service) ImportGTFSFile(ctx context.Context, name string) (ImportResult, error) {
	f, err := os.Open(name)
	if err != nil {
		return ImportResult{}, fmt.Errorf("open GTFS feed: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ImportResult{}, fmt.Errorf("open GTFS feed: %w", err)
	}
	if !st.Mode().IsRegular() {
		return ImportResult{}, fmt.Errorf("GTFS feed %s is not a regular file", name)
	}
	return s.ImportGTFS(ctx, f, st.Size())
}

// ImportGTFS imports the stations of a GTFS feed of size bytes read from r:
// a zip archive holding stops.txt (at its root or in one folder), or a bare
// stops.txt, detected by content.
//
// Stations are the stops with location_type 1; a feed without any takes
// its stops (location_type 0 or empty) that have no parent_station.
// Platforms, entrances and other nodes of a station are not imported: areas
// are places riders travel to, not station exits. A station's id is its
// stop_id made a slug ("place_SLKB" becomes "place-slkb"), so re-importing
// a feed, even with renamed stops, updates the same stations and creates no
// duplicates. Import sets name and position only; a new station gets the
// default radius and no lines, and lines, radius and areas that operators
// set are kept. Stations missing from the feed are kept too.
//
// The feed is read and checked whole before anything is written, and then
// written in one transaction: a feed with any fault changes nothing. Faults
// are errors of kind fault.Invalid naming the line of stops.txt (a missing
// required column, a bad coordinate, malformed CSV, a repeated stop_id),
// or of kind fault.TooLarge beyond MaxFeedBytes or MaxFeedRows.
func (s *Service) ImportGTFS(ctx context.Context, r io.ReaderAt, size int64) (ImportResult, error) {
	stops, err := s.limits.openStops(r, size)
	if err != nil {
		return ImportResult{}, err
	}
	defer stops.Close()
	feed, ignored, err := parseStops(stops, s.limits.rows)
	if err != nil {
		return ImportResult{}, err
	}
	p := stationdb.UpsertStationsParams{
		Ids: make([]string, len(feed)), Names: make([]string, len(feed)),
		Lats: make([]float64, len(feed)), Lngs: make([]float64, len(feed)),
	}
	for i, st := range feed {
		p.Ids[i], p.Names[i], p.Lats[i], p.Lngs[i] = st.ID, st.Name, st.Lat, st.Lng
	}
	res := ImportResult{Stations: len(feed), Ignored: ignored}
	err = postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		if err := q.LockCatalog(ctx); err != nil {
			return fmt.Errorf("lock catalog: %w", err)
		}
		known, err := q.StationIDsIn(ctx, p.Ids)
		if err != nil {
			return fmt.Errorf("find known stations: %w", err)
		}
		changed, err := q.UpsertStations(ctx, p)
		if err != nil {
			return fmt.Errorf("write stations: %w", err)
		}
		res.Created = len(feed) - len(known)
		res.Updated = len(changed) - res.Created
		res.Unchanged = len(feed) - len(changed)
		return nil
	})
	if err != nil {
		return ImportResult{}, fmt.Errorf("import GTFS feed: %w", err)
	}
	s.logger.Info("imported GTFS stations", "stations", res.Stations, "created", res.Created,
		"updated", res.Updated, "unchanged", res.Unchanged, "ignored", res.Ignored)
	return res, nil
}

// errFeedTooLarge is returned for a feed, or its stops.txt, over the limit.
var errFeedTooLarge = fault.New(fault.TooLarge, fmt.Sprintf("the GTFS feed is larger than %d MiB", MaxFeedBytes>>20))

// openStops returns stops.txt of the feed in r, unzipped when the feed is a
// zip archive, and never longer than l.bytes.
func (l feedLimits) openStops(r io.ReaderAt, size int64) (io.ReadCloser, error) {
	if size > l.bytes {
		return nil, errFeedTooLarge
	}
	magic := make([]byte, 4)
	n, _ := r.ReadAt(magic, 0)
	isZip := n == 4 && (bytes.Equal(magic, []byte("PK\x03\x04")) || bytes.Equal(magic, []byte("PK\x05\x06")))
	if !isZip {
		return io.NopCloser(io.NewSectionReader(r, 0, size)), nil
	}
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fault.New(fault.Invalid, "the GTFS feed is not a readable zip archive: "+err.Error())
	}
	var found []*zip.File
	for _, f := range zr.File {
		if path.Base(f.Name) == "stops.txt" && !f.FileInfo().IsDir() && !strings.HasPrefix(f.Name, "__MACOSX/") {
			if f.Name == "stops.txt" { // at the root: the one the GTFS spec means
				found = []*zip.File{f}
				break
			}
			found = append(found, f)
		}
	}
	switch {
	case len(found) == 0:
		return nil, fault.New(fault.Invalid, "the zip archive holds no stops.txt")
	case len(found) > 1:
		return nil, fault.New(fault.Invalid, fmt.Sprintf("the zip archive holds more than one stops.txt (%s, %s)", found[0].Name, found[1].Name))
	case found[0].UncompressedSize64 > uint64(l.bytes):
		return nil, errFeedTooLarge
	}
	// archive/zip itself fails a read past the size the header declares,
	// so a zip bomb cannot get around the check above.
	rc, err := found[0].Open()
	if err != nil {
		return nil, fault.New(fault.Invalid, "cannot unzip stops.txt: "+err.Error())
	}
	return rc, nil
}

// feedError is a fault in stops.txt at line.
func feedError(line int, format string, args ...any) error {
	return fault.New(fault.Invalid, fmt.Sprintf("stops.txt line %d: ", line)+fmt.Sprintf(format, args...))
}

// parseStops reads stops.txt and returns its stations, checked and with
// their ids made, and how many rows it ignored (see ImportGTFS).
func parseStops(r io.Reader, maxRows int) ([]Station, int, error) {
	cr := csv.NewReader(&rowLimiter{r: r, max: MaxRowBytes})
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, 0, feedError(1, "the file is empty; a header line is required")
	}
	if err != nil {
		return nil, 0, csvError(err)
	}
	col := make(map[string]int, len(header))
	for i, h := range header {
		if i == 0 {
			h = strings.TrimPrefix(h, "\ufeff") // a byte order mark, as spreadsheets write
		}
		h = strings.TrimSpace(h)
		if _, dup := col[h]; dup && h != "" {
			return nil, 0, feedError(1, "column %s appears twice", excerpt(h))
		}
		col[h] = i
	}
	var missing []string
	for _, c := range []string{"stop_id", "stop_name", "stop_lat", "stop_lon"} {
		if _, ok := col[c]; !ok {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return nil, 0, feedError(1, "missing required column %s", strings.Join(missing, ", "))
	}
	type stop struct {
		line         int
		stopID, name string
		lat, lng     float64
	}
	var (
		stations, roots []stop
		rows            int
		lineOf          = map[string]int{} // stop_id → its line
	)
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, 0, csvError(err)
		}
		if rows++; rows > maxRows {
			return nil, 0, fault.New(fault.TooLarge, fmt.Sprintf("stops.txt has more than %d rows", maxRows))
		}
		line, _ := cr.FieldPos(0)
		field := func(name string) string {
			if i, ok := col[name]; ok {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		stopID := field("stop_id")
		switch {
		case stopID == "":
			return nil, 0, feedError(line, "stop_id is empty")
		case len(stopID) > MaxStopIDLen:
			return nil, 0, feedError(line, "stop_id %s is longer than %d bytes", excerpt(stopID), MaxStopIDLen)
		}
		if prev, dup := lineOf[stopID]; dup {
			return nil, 0, feedError(line, "stop_id %s repeats the stop on line %d", excerpt(stopID), prev)
		}
		lineOf[stopID] = line
		locType := 0
		if v := field("location_type"); v != "" {
			locType, err = strconv.Atoi(v)
			if err != nil || locType < 0 || locType > 4 {
				return nil, 0, feedError(line, "location_type %s must be a whole number from 0 to 4", excerpt(v))
			}
		}
		if locType > 2 {
			continue // generic nodes and boarding areas: no name or position required
		}
		// GTFS requires a name and a position for stops, stations and entrances.
		// The same rule as a name typed by an operator: NFC, and no control
		// or invisible formatting characters (a NUL could not even be
		// stored). Line breaks and tabs inside a quoted name are layout, not
		// content: they become single spaces.
		name, problem := text.Line(strings.Join(strings.Fields(field("stop_name")), " "))
		switch n := text.Len(name); {
		case problem != "":
			return nil, 0, feedError(line, "stop_name %s", problem)
		case n == 0:
			return nil, 0, feedError(line, "stop_name is empty")
		case n > MaxNameLen:
			return nil, 0, feedError(line, "stop_name is longer than %d characters", MaxNameLen)
		}
		lat, err := strconv.ParseFloat(field("stop_lat"), 64)
		if err != nil || !geo.ValidLat(lat) {
			return nil, 0, feedError(line, "stop_lat %s is not a latitude (a number from -90 to 90)", excerpt(field("stop_lat")))
		}
		lng, err := strconv.ParseFloat(field("stop_lon"), 64)
		if err != nil || !geo.ValidLng(lng) {
			return nil, 0, feedError(line, "stop_lon %s is not a longitude (a number from -180 to 180)", excerpt(field("stop_lon")))
		}
		st := stop{line: line, stopID: stopID, name: name, lat: lat, lng: lng}
		switch {
		case locType == 1:
			stations = append(stations, st)
		case locType == 0 && field("parent_station") == "":
			roots = append(roots, st)
		}
	}
	if len(stations) == 0 {
		stations = roots
	}
	if len(stations) == 0 {
		return nil, 0, fault.New(fault.Invalid, "stops.txt holds no stations: no row has location_type 1, and every stop has a parent_station")
	}
	out := make([]Station, len(stations))
	lineOfID := map[string]int{} // station id → the line it came from
	for i, st := range stations {
		id := slugify(st.stopID)
		switch {
		case id == "":
			return nil, 0, feedError(st.line, "stop_id %s has no letters or digits to make a station id of", excerpt(st.stopID))
		case len(id) > MaxIDLen:
			return nil, 0, feedError(st.line, "stop_id %s makes a station id longer than %d characters", excerpt(st.stopID), MaxIDLen)
		case reservedIDs[id]:
			return nil, 0, feedError(st.line, "stop_id %s makes the reserved station id %q", excerpt(st.stopID), id)
		}
		if prev, dup := lineOfID[id]; dup {
			return nil, 0, feedError(st.line, "stop_id %s makes the station id %q, as the stop_id on line %d does", excerpt(st.stopID), id, prev)
		}
		lineOfID[id] = st.line
		out[i] = Station{ID: id, Name: st.name, Lat: st.lat, Lng: st.lng}
	}
	return out, rows - len(out), nil
}

// csvError names the line of a CSV syntax error or of a row too long.
func csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return feedError(pe.Line, "%v", pe.Err)
	}
	var long *rowTooLong
	if errors.As(err, &long) {
		return feedError(long.line, "the row is longer than %d KiB", MaxRowBytes>>10)
	}
	return fmt.Errorf("read stops.txt: %w", err)
}

// excerpt quotes a value from the feed for an error message: at most its
// first 40 characters, so that an error never repeats a huge field.
func excerpt(v string) string {
	const max = 40
	if text.Len(v) <= max {
		return strconv.Quote(v)
	}
	r := []rune(v[:min(len(v), 4*max)])
	return strconv.Quote(string(r[:max])) + "…"
}

// rowTooLong is rowLimiter's error: the row starting at line is too long.
type rowTooLong struct{ line int }

func (e *rowTooLong) Error() string { return fmt.Sprintf("stops.txt line %d is too long", e.line) }

// rowLimiter passes CSV through, failing once one row (a record: line
// breaks inside quotes do not end it) exceeds max bytes. encoding/csv
// would otherwise read a row of any length into memory.
type rowLimiter struct {
	r        io.Reader
	max      int
	rowBytes int
	inQuotes bool
	line     int // the physical line being read, from 1
	rowStart int // the line the current row started on
}

func (l *rowLimiter) Read(p []byte) (int, error) {
	if l.line == 0 {
		l.line, l.rowStart = 1, 1
	}
	n, err := l.r.Read(p)
	for _, b := range p[:n] {
		l.rowBytes++
		switch b {
		case '"':
			l.inQuotes = !l.inQuotes // an escaped "" toggles twice
		case '\n':
			l.line++
			if !l.inQuotes {
				l.rowBytes, l.rowStart = 0, l.line
			}
		}
		if l.rowBytes > l.max {
			return 0, &rowTooLong{line: l.rowStart}
		}
	}
	return n, err
}

// slugify makes a station id of a GTFS stop_id: ASCII letters and digits,
// lower-cased, with every other run of characters turned into one hyphen.
func slugify(s string) string {
	var b strings.Builder
	hyphen := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if hyphen && b.Len() > 0 {
				b.WriteByte('-')
			}
			b.WriteRune(r)
			hyphen = false
			continue
		}
		hyphen = true
	}
	return b.String()
}
