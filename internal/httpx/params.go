package httpx

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/lastmile/lastmile/internal/fault"
)

// UUIDParam reads the path parameter name as a UUID. A malformed id gets
// an error of kind NotFound: no such thing can exist.
func UUIDParam(r *http.Request, name string) (uuid.UUID, error) {
	id, err := uuid.Parse(chi.URLParam(r, name))
	if err != nil {
		return uuid.Nil, fault.New(fault.NotFound, fmt.Sprintf("no such %s: not a UUID", strings.ReplaceAll(name, "_", " ")))
	}
	return id, nil
}

// Page is a position in a newest-first list: the creation time and id of
// the last item seen.
type Page struct {
	Limit    int
	BeforeAt *time.Time
	BeforeID uuid.UUID
}

// PageParams reads limit (1 to 100, default 20) and cursor from the query.
func PageParams(r *http.Request) (Page, error) {
	var v fault.Validation
	p := Page{Limit: 20}
	q := r.URL.Query()
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100 {
			v.Add("limit", "must be a whole number from 1 to 100")
		}
		p.Limit = n
	}
	if c := q.Get("cursor"); c != "" {
		at, id, ok := decodeCursor(c)
		if !ok {
			v.Add("cursor", "is not a cursor this server gave out")
		}
		p.BeforeAt, p.BeforeID = &at, id
	}
	return p, v.Err()
}

// Cursor returns the cursor that continues a list after an item created at
// at with id id.
func Cursor(at time.Time, id uuid.UUID) string {
	return base64.RawURLEncoding.EncodeToString([]byte(at.UTC().Format(time.RFC3339Nano) + "|" + id.String()))
}

func decodeCursor(c string) (time.Time, uuid.UUID, bool) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, uuid.Nil, false
	}
	ts, idStr, ok := strings.Cut(string(b), "|")
	if !ok {
		return time.Time{}, uuid.Nil, false
	}
	at, err1 := time.Parse(time.RFC3339Nano, ts)
	id, err2 := uuid.Parse(idStr)
	return at, id, err1 == nil && err2 == nil
}

// Trim cuts a page read with Limit+1 items (see ListPage) back to limit and
// returns the cursor of the next page, or "" when there is none.
func Trim[T any](items []T, limit int, key func(T) (time.Time, uuid.UUID)) ([]T, string) {
	if len(items) <= limit {
		return items, ""
	}
	items = items[:limit]
	at, id := key(items[limit-1])
	return items, Cursor(at, id)
}

// ListPage reads the page parameters of r and asks for one item more than
// the client wants, which tells whether there is a next page; Trim cuts it.
func ListPage(r *http.Request) (page Page, want int, err error) {
	page, err = PageParams(r)
	return Page{Limit: page.Limit + 1, BeforeAt: page.BeforeAt, BeforeID: page.BeforeID}, page.Limit, err
}
