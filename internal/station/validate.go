package station

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/lastmile/lastmile/internal/fault"
	"github.com/lastmile/lastmile/internal/geo"
	"github.com/lastmile/lastmile/internal/text"
)

// Limits on what a station may hold.
const (
	MaxIDLen       = 64
	MaxNameLen     = 200
	MaxLines       = 20
	MaxLineNameLen = 50
	MaxAreas       = 100
	MinRadiusM     = 50
	MaxRadiusM     = 5000
)

// slugPattern is what a station or area id looks like: silk-board.
var slugPattern = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// reservedIDs cannot name a station: GET /api/v1/stations/nearby would
// hide a station called "nearby".
var reservedIDs = map[string]bool{"nearby": true}

// StationInput is a new station. Lat and Lng are pointers so that a missing
// coordinate is told apart from 0.
type StationInput struct {
	ID      string      `json:"id"`
	Name    string      `json:"name"`
	Lines   []string    `json:"lines"`
	Lat     *float64    `json:"lat"`
	Lng     *float64    `json:"lng"`
	RadiusM *int        `json:"radius_m"`
	Areas   []AreaInput `json:"areas"`
}

// AreaInput is a new area.
type AreaInput struct {
	ID   string   `json:"id"`
	Name string   `json:"name"`
	Lat  *float64 `json:"lat"`
	Lng  *float64 `json:"lng"`
}

// StationPatch changes a station; nil fields stay as they are. The id
// cannot change (other domains refer to it); areas change through their own
// calls.
type StationPatch struct {
	Name    *string   `json:"name"`
	Lines   *[]string `json:"lines"`
	Lat     *float64  `json:"lat"`
	Lng     *float64  `json:"lng"`
	RadiusM *int      `json:"radius_m"`
}

// AreaPatch changes an area; nil fields stay as they are.
type AreaPatch struct {
	Name *string  `json:"name"`
	Lat  *float64 `json:"lat"`
	Lng  *float64 `json:"lng"`
}

// validate returns the station in describes, normalized, or a
// *fault.Validation naming every invalid field.
func (in StationInput) validate() (Station, error) {
	var v fault.Validation
	st := Station{
		ID:      checkID(&v, "id", in.ID, true),
		Name:    checkName(&v, "name", in.Name),
		Lines:   checkLines(&v, in.Lines),
		Lat:     checkCoord(&v, "lat", in.Lat, geo.ValidLat, "between -90 and 90"),
		Lng:     checkCoord(&v, "lng", in.Lng, geo.ValidLng, "between -180 and 180"),
		RadiusM: DefaultRadiusM,
		Areas:   []Area{},
	}
	if in.RadiusM != nil {
		st.RadiusM = *in.RadiusM
		checkRadius(&v, *in.RadiusM)
	}
	v.Check(len(in.Areas) <= MaxAreas, "areas", fmt.Sprintf("must hold at most %d areas", MaxAreas))
	seen := map[string]int{}
	for i, a := range in.Areas {
		prefix := fmt.Sprintf("areas[%d].", i)
		area := a.validate(&v, prefix)
		if j, dup := seen[area.ID]; dup && area.ID != "" {
			v.Add(prefix+"id", fmt.Sprintf("repeats areas[%d].id", j))
		}
		seen[area.ID] = i
		st.Areas = append(st.Areas, area)
	}
	return st, v.Err()
}

// validate records what is wrong with in under field names that start with
// prefix, and returns the area, normalized.
func (in AreaInput) validate(v *fault.Validation, prefix string) Area {
	return Area{
		ID:   checkID(v, prefix+"id", in.ID, false),
		Name: checkName(v, prefix+"name", in.Name),
		Lat:  checkCoord(v, prefix+"lat", in.Lat, geo.ValidLat, "between -90 and 90"),
		Lng:  checkCoord(v, prefix+"lng", in.Lng, geo.ValidLng, "between -180 and 180"),
	}
}

// validate checks the fields p sets, normalizing them in place, and returns
// a *fault.Validation naming every invalid one.
func (p *StationPatch) validate() error {
	var v fault.Validation
	if p.Name != nil {
		name := checkName(&v, "name", *p.Name)
		p.Name = &name
	}
	if p.Lines != nil {
		lines := checkLines(&v, *p.Lines)
		p.Lines = &lines
	}
	if p.Lat != nil {
		checkCoord(&v, "lat", p.Lat, geo.ValidLat, "between -90 and 90")
	}
	if p.Lng != nil {
		checkCoord(&v, "lng", p.Lng, geo.ValidLng, "between -180 and 180")
	}
	if p.RadiusM != nil {
		checkRadius(&v, *p.RadiusM)
	}
	return v.Err()
}

// validate checks the fields p sets, normalizing them in place, and returns
// a *fault.Validation naming every invalid one.
func (p *AreaPatch) validate() error {
	var v fault.Validation
	if p.Name != nil {
		name := checkName(&v, "name", *p.Name)
		p.Name = &name
	}
	if p.Lat != nil {
		checkCoord(&v, "lat", p.Lat, geo.ValidLat, "between -90 and 90")
	}
	if p.Lng != nil {
		checkCoord(&v, "lng", p.Lng, geo.ValidLng, "between -180 and 180")
	}
	return v.Err()
}

// checkID records what is wrong with id as a slug; station ids may not be
// reserved words.
func checkID(v *fault.Validation, field, id string, station bool) string {
	switch {
	case id == "":
		v.Add(field, "is required")
	case len(id) > MaxIDLen:
		v.Add(field, fmt.Sprintf("must be at most %d characters", MaxIDLen))
	case !slugPattern.MatchString(id):
		v.Add(field, "must be lower-case letters and digits in words joined by single hyphens, like silk-board")
	case station && reservedIDs[id]:
		v.Add(field, fmt.Sprintf("%q is reserved", id))
	}
	return id
}

func checkName(v *fault.Validation, field, name string) string {
	name, problem := text.Line(name)
	n := text.Len(name)
	switch {
	case problem != "":
		v.Add(field, problem)
	case n == 0:
		v.Add(field, "is required")
	case n > MaxNameLen:
		v.Add(field, fmt.Sprintf("must be at most %d characters", MaxNameLen))
	}
	return name
}

func checkLines(v *fault.Validation, lines []string) []string {
	out := make([]string, 0, len(lines))
	if len(lines) > MaxLines {
		v.Add("lines", fmt.Sprintf("must hold at most %d lines", MaxLines))
		return out
	}
	for i, l := range lines {
		l, problem := text.Line(l)
		field := fmt.Sprintf("lines[%d]", i)
		n := text.Len(l)
		switch {
		case problem != "":
			v.Add(field, problem)
		case n == 0:
			v.Add(field, "must not be empty")
		case n > MaxLineNameLen:
			v.Add(field, fmt.Sprintf("must be at most %d characters", MaxLineNameLen))
		case containsFold(out, l):
			v.Add(field, fmt.Sprintf("repeats %q", l))
		}
		out = append(out, l)
	}
	return out
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// checkCoord records that field is missing or fails valid, and returns its
// value (0 when missing).
func checkCoord(v *fault.Validation, field string, c *float64, valid func(float64) bool, rng string) float64 {
	if c == nil {
		v.Add(field, "is required")
		return 0
	}
	v.Check(valid(*c), field, "must be a number "+rng)
	return *c
}

func checkRadius(v *fault.Validation, r int) {
	v.Check(r >= MinRadiusM && r <= MaxRadiusM, "radius_m", fmt.Sprintf("must be from %d to %d metres", MinRadiusM, MaxRadiusM))
}
