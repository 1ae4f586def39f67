package station

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func validInput() StationInput {
	return StationInput{
		ID: "silk-board", Name: "Central Silk Board", Lines: []string{"Yellow"},
		Lat: ptr(12.9177), Lng: ptr(77.6238),
		Areas: []AreaInput{{ID: "madiwala", Name: "Madiwala", Lat: ptr(12.9226), Lng: ptr(77.6174)}},
	}
}

func TestStationInputNamesEveryInvalidField(t *testing.T) {
	tests := []struct {
		name   string
		change func(*StationInput)
		want   []string
	}{
		{"valid", func(*StationInput) {}, nil},
		{"missing id", func(in *StationInput) { in.ID = "" }, []string{"id"}},
		{"upper-case id", func(in *StationInput) { in.ID = "Silk-Board" }, []string{"id"}},
		{"id with a double hyphen", func(in *StationInput) { in.ID = "silk--board" }, []string{"id"}},
		{"id with a trailing hyphen", func(in *StationInput) { in.ID = "silk-" }, []string{"id"}},
		{"id too long", func(in *StationInput) { in.ID = strings.Repeat("a", 65) }, []string{"id"}},
		{"reserved id", func(in *StationInput) { in.ID = "nearby" }, []string{"id"}},
		{"blank name", func(in *StationInput) { in.Name = "   " }, []string{"name"}},
		{"name too long", func(in *StationInput) { in.Name = strings.Repeat("n", 201) }, []string{"name"}},
		{"bidirectional override in name", func(in *StationInput) { in.Name = "Silk \u202eBoard" }, []string{"name"}},
		{"zero-width space in name", func(in *StationInput) { in.Name = "Silk\u200bBoard" }, []string{"name"}},
		{"newline in name", func(in *StationInput) { in.Name = "Silk\nBoard" }, []string{"name"}},
		{"control character in a line", func(in *StationInput) { in.Lines = []string{"Yel\alow"} }, []string{"lines[0]"}},
		{"format character in an area name", func(in *StationInput) { in.Areas[0].Name = "Madi\u2066wala" }, []string{"areas[0].name"}},
		{"missing lat", func(in *StationInput) { in.Lat = nil }, []string{"lat"}},
		{"lat out of range", func(in *StationInput) { in.Lat = ptr(90.5) }, []string{"lat"}},
		{"lat not a number", func(in *StationInput) { in.Lat = ptr(math.NaN()) }, []string{"lat"}},
		{"missing lng", func(in *StationInput) { in.Lng = nil }, []string{"lng"}},
		{"lng out of range", func(in *StationInput) { in.Lng = ptr(-180.1) }, []string{"lng"}},
		{"radius too small", func(in *StationInput) { in.RadiusM = ptr(10) }, []string{"radius_m"}},
		{"radius too large", func(in *StationInput) { in.RadiusM = ptr(5001) }, []string{"radius_m"}},
		{"empty line", func(in *StationInput) { in.Lines = []string{"Yellow", " "} }, []string{"lines[1]"}},
		{"repeated line", func(in *StationInput) { in.Lines = []string{"Yellow", "yellow"} }, []string{"lines[1]"}},
		{"too many lines", func(in *StationInput) { in.Lines = make([]string, 21) }, []string{"lines"}},
		{"area without id", func(in *StationInput) { in.Areas[0].ID = "" }, []string{"areas[0].id"}},
		{"area with a bad position", func(in *StationInput) { in.Areas[0].Lat, in.Areas[0].Lng = nil, ptr(200.0) }, []string{"areas[0].lat", "areas[0].lng"}},
		{"area without name", func(in *StationInput) { in.Areas[0].Name = "" }, []string{"areas[0].name"}},
		{"repeated area id", func(in *StationInput) { in.Areas = append(in.Areas, in.Areas[0]) }, []string{"areas[1].id"}},
		{"everything wrong at once", func(in *StationInput) { *in = StationInput{RadiusM: ptr(0)} },
			[]string{"id", "lat", "lng", "name", "radius_m"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := validInput()
			tt.change(&in)
			_, err := in.validate()
			if got := invalidFields(err); !slices.Equal(got, tt.want) {
				t.Fatalf("validate() names %v, want %v (err %v)", got, tt.want, err)
			}
		})
	}
}

func TestStationInputDefaultsAndNormalizes(t *testing.T) {
	in := validInput()
	in.Name = "  Central Silk Board "
	in.Lines = []string{" Yellow ", "Pink"}
	st, err := in.validate()
	if err != nil {
		t.Fatal(err)
	}
	if st.RadiusM != DefaultRadiusM || st.Name != "Central Silk Board" || !slices.Equal(st.Lines, []string{"Yellow", "Pink"}) {
		t.Fatalf("validate() = %+v, want radius 800, trimmed name and lines", st)
	}
	in.Lines = nil
	if st, _ := in.validate(); st.Lines == nil {
		t.Fatalf("no lines gives nil, want an empty list (JSON [])")
	}
}

func TestPatchesNameEveryInvalidField(t *testing.T) {
	tests := []struct {
		name  string
		patch StationPatch
		want  []string
	}{
		{"empty patch", StationPatch{}, nil},
		{"blank name", StationPatch{Name: ptr(" ")}, []string{"name"}},
		{"bad lines", StationPatch{Lines: &[]string{""}}, []string{"lines[0]"}},
		{"bad position and radius", StationPatch{Lat: ptr(-91.0), Lng: ptr(181.0), RadiusM: ptr(0)}, []string{"lat", "lng", "radius_m"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := invalidFields(tt.patch.validate()); !slices.Equal(got, tt.want) {
				t.Fatalf("validate() names %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("area", func(t *testing.T) {
		p := AreaPatch{Name: ptr(""), Lat: ptr(100.0), Lng: ptr(0.0)}
		if got := invalidFields(p.validate()); !slices.Equal(got, []string{"lat", "name"}) {
			t.Fatalf("validate() names %v, want [lat name]", got)
		}
	})
}
