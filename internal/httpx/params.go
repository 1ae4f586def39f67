package httpx

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/paging"
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

// PageParams reads limit (1 to 100, default 20) and cursor from the query.
func PageParams(r *http.Request) (paging.Page, error) {
	var v fault.Validation
	limit := 20
	q := r.URL.Query()
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100 {
			v.Add("limit", "must be a whole number from 1 to 100")
		}
		limit = n
	}
	p, ok := paging.After(q.Get("cursor"), limit)
	if !ok {
		v.Add("cursor", "is not a cursor this server gave out")
	}
	return p, v.Err()
}

// ListPage reads the page parameters of r and asks for one item more than
// the client wants, which tells whether there is a next page; paging.Trim
// cuts it.
func ListPage(r *http.Request) (page paging.Page, want int, err error) {
	page, err = PageParams(r)
	return page.OneMore(), page.Limit, err
}
