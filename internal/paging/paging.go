// Package paging is a position in a newest-first list and the opaque
// cursor that carries it between pages. It knows nothing of HTTP.
package paging

import (
	"encoding/base64"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Page asks for at most Limit items of a newest-first list, those created
// before (BeforeAt, BeforeID) when BeforeAt is set.
type Page struct {
	Limit    int
	BeforeAt *time.Time
	BeforeID uuid.UUID
}

// After returns the page of limit items that continues after cursor; ok is
// false when cursor is not one Cursor made. An empty cursor is the first page.
func After(cursor string, limit int) (p Page, ok bool) {
	p = Page{Limit: limit}
	if cursor == "" {
		return p, true
	}
	at, id, ok := decode(cursor)
	if !ok {
		return p, false
	}
	p.BeforeAt, p.BeforeID = &at, id
	return p, true
}

// Cursor returns the cursor that continues a list after an item created at
// at with id id.
func Cursor(at time.Time, id uuid.UUID) string {
	return base64.RawURLEncoding.EncodeToString([]byte(at.UTC().Format(time.RFC3339Nano) + "|" + id.String()))
}

func decode(c string) (time.Time, uuid.UUID, bool) {
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

// OneMore returns p asking for one item more than it wants, which tells
// whether there is a next page; Trim cuts the answer back.
func (p Page) OneMore() Page {
	p.Limit++
	return p
}

// Trim cuts items read with a page's OneMore back to limit and returns the
// cursor of the next page, or "" when there is none.
func Trim[T any](items []T, limit int, key func(T) (time.Time, uuid.UUID)) ([]T, string) {
	if len(items) <= limit {
		return items, ""
	}
	items = items[:limit]
	at, id := key(items[limit-1])
	return items, Cursor(at, id)
}
