package main

import (
	"fmt"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"

	"github.com/lastmile/lastmile/internal/postgres/pgtest"
)

// The whole story in three browsers at once: a driver builds a route
// through HSR Layout and simulates the drive; a rider asks for a ride there
// and sees the match with the driver's name, the car coming closer and the
// arrival; the driver marks pickup, start and drop-off; both see the trip
// completed, and the operator's page shows the trip and its counters move.
func TestBrowserWholeStory(t *testing.T) {
	url := pgtest.URL(t)
	// A generous grace, so a request for "in 10 minutes" (the form's
	// default) is eligible for a driver arriving within the minute.
	s := startServer(t, url, map[string]string{"LASTMILE_MATCH_GRACE": "30m"})
	createOperator(t, url, "ops@example.com", "operator password")
	b := newBrowser(t)
	suffix := time.Now().Format("150405.000")
	driverName := "Ravi " + suffix

	ops := b.open(t, s.URL, "operator", desktop)
	ops.signIn("ops@example.com", "operator password")
	ops.wait("the operator screen with its counters", `location.pathname === "/operator" && document.querySelector('[data-counter="matched_last_hour"] dd').innerText === "0"`, 10*time.Second)
	ops.waitText("table.stations", "HSR Layout", 10*time.Second)

	drv := b.open(t, s.URL, "driver", desktop)
	drv.signUp("driver", driverName, fmt.Sprintf("ravi-%s@example.com", suffix))
	drv.click(`#route-stations button[data-station="hsr"]`)
	drv.waitText("#route-order", "HSR Layout", 5*time.Second)
	drv.choose(`#route-form select[name="destination_area_id"]`, "kudlu-gate")
	drv.fill(`#route-form input[name="vehicle"]`, "white Swift KA-01-AB-1234")
	drv.click("#go-online")
	drv.wait("the route to be online", `!!document.querySelector("#simulate")`, 10*time.Second)
	// A driver who refuses to share the phone's position is told how to
	// go on.
	drv.deny("geolocation")
	drv.click("#share-gps")
	drv.waitText("#feed-status", "Location permission was refused", 10*time.Second)
	drv.choose("#sim-speed", "40")
	drv.click("#simulate")
	drv.waitText("#feed-status", "Simulation: driving", 5*time.Second)

	rdr := b.open(t, s.URL, "rider", phone)
	rdr.signUp("rider", "Asha", fmt.Sprintf("asha-%s@example.com", suffix))
	rdr.click(`#station-list button[data-station="hsr"]`)
	rdr.waitText("#chosen-station", "HSR Layout", 5*time.Second)
	rdr.choose(`#request-form select[name="destination_area_id"]`, "kudlu-gate")
	rdr.setPermission("notifications", cdpbrowser.PermissionSettingGranted)
	rdr.click("#request-ride")
	rdr.wait("the ride to be waiting or matched", `["waiting", "matched"].includes(document.querySelector("#ride").dataset.status)`, 10*time.Second)

	// After the first request, the app registers its service worker for
	// Web Push (subscribing needs a push service, which this machine lacks).
	deadline := time.Now().Add(10 * time.Second)
	for !evalAwait[bool](rdr, `navigator.serviceWorker.getRegistration("/").then(r => !!r && !!(r.active || r.installing || r.waiting))`) {
		if time.Now().After(deadline) {
			t.Fatal("no service worker registered after the first ride request")
		}
		time.Sleep(200 * time.Millisecond)
	}
	ops.wait("a rider waiting at HSR Layout", `document.querySelector('[data-counter="riders_waiting"] dd').innerText === "1" || document.querySelector('[data-counter="matched_last_hour"] dd').innerText === "1"`, 10*time.Second)

	// Matched, with the driver's name and vehicle.
	rdr.wait("the match", `document.querySelector("#ride").dataset.status === "matched"`, 30*time.Second)
	rdr.waitText("#driver-name", driverName, 5*time.Second)
	rdr.waitText("#driver-name", "white Swift", 5*time.Second)
	// The car comes closer on the map.
	rdr.wait("the driver's position", `!!document.querySelector("#driver-distance")`, 10*time.Second)
	first := rdr.text("#driver-distance")
	rdr.wait("the car to move", fmt.Sprintf(`(document.querySelector("#driver-distance") || {innerText: %q}).innerText !== %q`, first, first), 10*time.Second)
	if n := eval[int](rdr, `document.querySelectorAll(".leaflet-marker-icon").length`); n < 1 {
		t.Errorf("the rider's map shows %d markers, want the car", n)
	}
	rdr.shot("rider-matched", phone)
	rdr.resize(phone)

	// The car reaches the station and waits; the driver marks arrival.
	drv.waitText("#feed-status", "waiting at HSR Layout", 40*time.Second)
	drv.click(`button[data-action="arrived"]`)
	rdr.wait("the arrival", `document.querySelector("#ride").dataset.status === "arrived"`, 10*time.Second)
	rdr.waitText("#ride-status", "Your driver has arrived", 5*time.Second)

	drv.wait("pickup to be allowed", `!document.querySelector('button[data-action="picked-up"]').disabled`, 10*time.Second)
	if !eval[bool](drv, `document.querySelector('button[data-action="no-show"]').disabled`) {
		t.Error("no-show is enabled right after arrival, before the server's no-show wait")
	}
	if eval[bool](drv, `document.querySelector('button[data-action="start"]').disabled === false`) {
		t.Error("start is enabled before the rider is picked up")
	}
	drv.click(`button[data-action="picked-up"]`)
	drv.wait("start to be allowed", `!document.querySelector('button[data-action="start"]').disabled`, 10*time.Second)
	drv.click(`button[data-action="start"]`)
	rdr.waitText("#ride-status", "On the way", 10*time.Second)
	drv.wait("drop-off to be allowed", `!document.querySelector('button[data-action="dropped-off"]').disabled`, 10*time.Second)
	drv.shot("driver-trip", desktop)
	drv.click(`button[data-action="dropped-off"]`)

	drv.wait("the trip completed on the driver's page", `!!document.querySelector('[data-trip][data-status="completed"]')`, 10*time.Second)
	drv.waitText("[data-trip]", "Trip completed", 5*time.Second)
	rdr.wait("the trip completed on the rider's page", `document.querySelector("#ride").dataset.status === "completed"`, 10*time.Second)
	rdr.waitText("#ride-status", "Trip completed", 5*time.Second)

	ops.wait("the completed trip on the operator's page", `!!document.querySelector('#op-trips li[data-status="completed"]')`, 10*time.Second)
	ops.wait("the match counted", `document.querySelector('[data-counter="matched_last_hour"] dd').innerText === "1"`, 10*time.Second)
	ops.wait("nobody left waiting", `document.querySelector('[data-counter="riders_waiting"] dd').innerText === "0"`, 10*time.Second)

	// Each main screen: accessible, and pictured at both widths.
	for _, p := range []*page{rdr, drv, ops} {
		p.resize(desktop)
		p.axe(p.name + " screen (desktop)")
		p.resize(phone)
		p.axe(p.name + " screen (phone)")
	}
	rdr.shot("rider", phone)
	rdr.shot("rider", desktop)
	drv.shot("driver", phone)
	drv.shot("driver", desktop)
	ops.shot("operator", phone)
	ops.shot("operator", desktop)
	// The driver finishes the route and may build another; the rider may
	// ask again.
	drv.click("#finish-route")
	drv.wait("the route builder again", `!document.querySelector("#route-form").hidden && document.querySelector("#route").hidden`, 10*time.Second)
	rdr.click("#new-ride")
	rdr.wait("the request form again", `!document.querySelector("#request-form").hidden && document.querySelector("#ride").hidden`, 10*time.Second)
	rdr.waitText("#history", "dropped off", 5*time.Second)
	for _, p := range []*page{rdr, drv, ops} {
		p.clean()
	}
}
