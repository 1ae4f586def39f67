// Package station owns the catalog of metro stations and the areas near
// them: CRUD for operators, GTFS import, and nearby search.
package station
