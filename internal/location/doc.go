// Package location owns GPS ingest: plausibility checks, each connected
// driver's latest position, batched position writes, and detection of a
// driver approaching the next station of its route.
package location
