package paging

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestCursorContinuesAfterItsItem(t *testing.T) {
	at := time.Date(2026, 11, 25, 8, 30, 0, 123, time.UTC)
	id := uuid.New()
	p, ok := After(Cursor(at, id), 20)
	if !ok || p.Limit != 20 || p.BeforeAt == nil || !p.BeforeAt.Equal(at) || p.BeforeID != id {
		t.Fatalf("After(Cursor) = %+v, %v; want the page before %v %v", p, ok, at, id)
	}
	if p, ok := After("", 5); !ok || p.BeforeAt != nil || p.Limit != 5 {
		t.Fatalf("After(\"\") = %+v, %v; want the first page", p, ok)
	}
	for _, bad := range []string{"x", "!!", Cursor(at, id)[:10]} {
		if _, ok := After(bad, 20); ok {
			t.Errorf("After(%q) accepted a cursor no server gave out", bad)
		}
	}
}

func TestTrimCutsTheExtraItemAndPointsAtTheLastKept(t *testing.T) {
	type item struct {
		at time.Time
		id uuid.UUID
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	items := []item{{base.Add(3), uuid.New()}, {base.Add(2), uuid.New()}, {base.Add(1), uuid.New()}}
	key := func(i item) (time.Time, uuid.UUID) { return i.at, i.id }
	got, next := Trim(items, 2, key)
	if len(got) != 2 || next != Cursor(items[1].at, items[1].id) {
		t.Fatalf("Trim(3 items, 2) = %d items, cursor %q; want 2 and the second's cursor", len(got), next)
	}
	if got, next := Trim(items, 3, key); len(got) != 3 || next != "" {
		t.Fatalf("Trim(3 items, 3) = %d items, cursor %q; want all and no cursor", len(got), next)
	}
	if (Page{Limit: 20}).OneMore().Limit != 21 {
		t.Fatal("OneMore does not ask for one more")
	}
}
