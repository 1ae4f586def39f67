package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lastmile/lastmile/internal/postgres/pgtest"
)

// Sign-up and sign-in errors appear beside the field they concern; a
// signed-in session survives a reload and ends with sign-out.
func TestBrowserSignInErrorsAndSession(t *testing.T) {
	s := startServer(t, pgtest.URL(t), map[string]string{"LASTMILE_REQUEST_EXPIRY": "1s"})
	b := newBrowser(t)
	p := b.open(t, s.URL, "sign-in", phone)
	email := fmt.Sprintf("mira-%d@example.com", time.Now().UnixNano())

	// Sign-up: empty fields, then a password the server finds too short.
	p.nav("/signup")
	p.click(`form button[type="submit"]`)
	for _, f := range []string{"name", "email", "password"} {
		p.wait(f+" error", fmt.Sprintf(`document.querySelector('[data-error-for=%q]').innerText !== ""`, f), 5*time.Second)
	}
	p.fill("#f-name", "Mira")
	p.fill("#f-email", email)
	p.fill("#f-password", "short")
	p.click(`form button[type="submit"]`)
	p.waitText(`[data-error-for="password"]`, "at least 8", 5*time.Second)
	if got := p.text(`[data-error-for="email"]`); got != "" {
		t.Errorf("email error = %q after a valid email", got)
	}
	p.axe("sign-up screen")
	p.fill("#f-password", "a long password")
	p.click(`form button[type="submit"]`)
	p.wait("the rider screen", `location.pathname === "/rider" && !!document.querySelector("#request-form")`, 10*time.Second)

	// The session survives a reload.
	p.do(chromedp.Reload())
	p.wait("the rider screen after a reload", `location.pathname === "/rider" && !!document.querySelector("#request-form")`, 10*time.Second)
	p.waitText("#who", "Mira", 5*time.Second)
	p.wait("the socket online", `document.querySelector("#conn").dataset.state === "online"`, 10*time.Second)

	// Sign out, then a wrong password: the error is beside the password.
	p.click("#signout")
	p.wait("the sign-in screen", `location.pathname === "/signin" && !!document.querySelector("#f-password")`, 10*time.Second)
	p.fill("#f-email", email)
	p.fill("#f-password", "not my password")
	p.click(`form button[type="submit"]`)
	p.waitText(`[data-error-for="password"]`, "Wrong email or password", 5*time.Second)
	if !eval[bool](p, `document.querySelector("#f-password").closest(".field").contains(document.querySelector('[data-error-for="password"]')) && document.querySelector("#f-password").getAttribute("aria-invalid") === "true"`) {
		t.Error("the wrong-password error is not beside the password field, or the field is not marked invalid")
	}
	p.axe("sign-in screen with an error")
	p.shot("signin", phone)
	p.shot("signin", desktop)
	// By keyboard alone: Tab from the email to the password, Enter signs in.
	p.fill("#f-email", email)
	p.do(chromedp.KeyEvent("\t"))
	if !eval[bool](p, `document.activeElement === document.querySelector("#f-password")`) {
		t.Fatal("Tab from the email field does not reach the password field")
	}
	p.do(chromedp.KeyEvent("a long password"))
	p.do(chromedp.KeyEvent("\r"))
	p.wait("the rider screen", `location.pathname === "/rider" && !!document.querySelector("#request-form")`, 10*time.Second)

	// A request nobody takes expires, and the page says what to do next.
	p.click(`#station-list button[data-station="hsr"]`)
	eval[bool](p, `(() => { const d = new Date(Date.now() - 5 * 60000), z = (n) => String(n).padStart(2, "0");
		document.querySelector('[name="arrival_time"]').value = d.getFullYear() + "-" + z(d.getMonth() + 1) + "-" + z(d.getDate()) + "T" + z(d.getHours()) + ":" + z(d.getMinutes());
		return true })()`)
	p.click("#request-ride")
	p.wait("the expiry", `document.querySelector("#ride").dataset.status === "expired"`, 15*time.Second)
	p.waitText("#ride", "Request again", 5*time.Second)
	p.clean()
}

// A page open while its server restarts shows that it is offline, then
// reconnects by itself and catches up with every event it missed, in
// order, once each (the events were made on another replica meanwhile).
func TestBrowserCatchesUpAfterRestart(t *testing.T) {
	url := pgtest.URL(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	env := map[string]string{"LASTMILE_ADDR": addr}
	a := startServer(t, url, env)
	other := startServer(t, url, nil) // another replica on the same database
	b := newBrowser(t)
	p := b.open(t, a.URL, "rider", phone)
	p.signUp("rider", "Noor", fmt.Sprintf("noor-%d@example.com", time.Now().UnixNano()))
	p.wait("online", `document.querySelector("#conn").dataset.state === "online"`, 10*time.Second)
	rdr := &client{tb: t, base: other.URL, role: "rider", token: eval[string](p, `localStorage.getItem("lastmile.token")`)}
	cycle := func() {
		req := rdr.must(201, "POST", "/api/v1/ride-requests", map[string]any{"station_id": hsrStation, "destination_area_id": areaA, "arrival_time": arrival(10 * time.Minute)})
		rdr.must(200, "POST", "/api/v1/ride-requests/"+req["id"].(string)+"/cancel", nil)
	}
	cycle()
	p.wait("event 1", `!!document.querySelector('#activity li[data-seq="1"]')`, 10*time.Second)

	p.mu.Lock()
	p.allowNetErrors = true // the page's requests fail while the server is down
	p.mu.Unlock()
	a.shutdown(t)
	p.wait("the offline indicator", `document.querySelector("#conn").dataset.state === "offline" && document.querySelector("#conn").innerText.includes("Offline")`, 10*time.Second)
	cycle()
	cycle()
	startServer(t, url, env)
	p.wait("online again", `document.querySelector("#conn").dataset.state === "online"`, 20*time.Second)
	p.wait("events 2 and 3", `!!document.querySelector('#activity li[data-seq="3"]')`, 10*time.Second)
	got := eval[[]int](p, `[...document.querySelectorAll('#activity li[data-seq]')].map(li => Number(li.dataset.seq)).reverse()`)
	if fmt.Sprint(got) != "[1 2 3]" {
		t.Fatalf("events shown = %v, want [1 2 3]: each once, in order", got)
	}
	p.wait("the ride shown cancelled", `document.querySelector("#ride").dataset.status === "cancelled"`, 10*time.Second)
	p.clean()
}

// An operator's edit of a station reaches a rider's open page, and
// deleting a station in use is refused with the reason.
func TestBrowserOperatorEditReachesRider(t *testing.T) {
	url := pgtest.URL(t)
	s := startServer(t, url, nil)
	createOperator(t, url, "ops@example.com", "operator password")
	b := newBrowser(t)
	rp := b.open(t, s.URL, "rider", phone)
	rp.signUp("rider", "Kiran", fmt.Sprintf("kiran-%d@example.com", time.Now().UnixNano()))
	rp.waitText("#station-list", "HSR Layout", 10*time.Second)
	// Near Bellandur, "Nearest to me" puts Bellandur first, with distances.
	rp.locate(12.9390, 77.6960)
	rp.click("#nearest")
	rp.wait("Bellandur first", `document.querySelector("#station-list button").dataset.station === "bellandur" && document.querySelector("#station-list button").innerText.includes(" m")`, 10*time.Second)

	ops := b.open(t, s.URL, "operator", desktop)
	ops.signIn("ops@example.com", "operator password")
	ops.waitText("table.stations", "HSR Layout", 10*time.Second)
	ops.click(`tr[data-station="hsr"] button[aria-label^="Edit"]`)
	ops.wait("the edit form", `document.querySelector('#station-form [name="name"]').value === "HSR Layout"`, 5*time.Second)
	ops.waitText("#areas", "Kudlu Gate", 5*time.Second)
	ops.fill(`#station-form [name="name"]`, "HSR Layout Junction")
	ops.click(`#station-form button[type="submit"]`)
	ops.waitText("table.stations", "HSR Layout Junction", 10*time.Second)
	rp.waitText("#station-list", "HSR Layout Junction", 15*time.Second)

	// A waiting request refers to HSR: deleting it is refused, explained.
	rp.click(`#station-list button[data-station="hsr"]`)
	rp.click("#request-ride")
	rp.wait("the waiting ride", `document.querySelector("#ride").dataset.status === "waiting"`, 10*time.Second)
	ops.click(`tr[data-station="hsr"] button[data-delete]`)
	ops.waitText(`tr[data-station="hsr"]`, "Confirm delete", 5*time.Second)
	ops.click(`tr[data-station="hsr"] button[data-delete]`)
	ops.waitText("#stations-error", "cannot be deleted", 10*time.Second)
	ops.waitText("table.stations", "HSR Layout Junction", 5*time.Second)
	ops.axe("operator screen while editing")
	ops.shot("operator-edit", desktop)

	// A new station, created and deleted from the page.
	ops.fill(`#station-form [name="id"]`, "test-stop")
	ops.fill(`#station-form [name="name"]`, "Test Stop")
	ops.fill(`#station-form [name="lat"]`, "12.95")
	ops.fill(`#station-form [name="lng"]`, "77.60")
	ops.click(`#station-form button[type="submit"]`)
	ops.waitText(`tr[data-station="test-stop"]`, "Test Stop", 10*time.Second)
	ops.click(`tr[data-station="test-stop"] button[data-delete]`)
	ops.click(`tr[data-station="test-stop"] button[data-delete]`)
	ops.wait("the station gone", `!document.querySelector('tr[data-station="test-stop"]')`, 10*time.Second)

	// A GTFS stops.txt uploaded from the page.
	feed := filepath.Join(t.TempDir(), "stops.txt")
	if err := os.WriteFile(feed, []byte("stop_id,stop_name,stop_lat,stop_lon,location_type\nMG,MG Road,12.9756,77.6066,1\nMG-P1,MG Road platform 1,12.9756,77.6066,0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ops.do(chromedp.SetUploadFiles(chromedp.CSS(`#import-form input[type="file"]`), []string{feed}))
	ops.click(`#import-form button[type="submit"]`)
	ops.waitText("#import-result", "Imported 1 stations: 1 new", 10*time.Second)
	ops.waitText("table.stations", "MG Road", 10*time.Second)
	rp.clean()
	ops.clean()
}

// A driver shares the phone's real position: the browser's geolocation
// reaches the server, and an operator sees the driver online there.
func TestBrowserDriverSharesGPS(t *testing.T) {
	url := pgtest.URL(t)
	s := startServer(t, url, nil)
	b := newBrowser(t)
	p := b.open(t, s.URL, "driver", phone)
	p.signUp("driver", "Dev", fmt.Sprintf("dev-%d@example.com", time.Now().UnixNano()))
	p.click(`#route-stations button[data-station="silkboard"]`)
	p.choose(`#route-form select[name="destination_area_id"]`, "madiwala")
	p.click("#go-online")
	p.wait("the route to be online", `!!document.querySelector("#share-gps")`, 10*time.Second)
	p.locate(12.9300, 77.6000)
	p.click("#share-gps")
	p.waitText("#feed-status", "Sharing your GPS", 10*time.Second)

	ops := operator(t, s, url)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var got struct {
			Positions []struct {
				Lat, Lng float64
				Online   bool
			}
		}
		ops.do("GET", "/api/v1/drivers/positions", nil, &got)
		if len(got.Positions) == 1 && got.Positions[0].Online && got.Positions[0].Lat == 12.93 && got.Positions[0].Lng == 77.6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the operator sees %+v, want the driver online at 12.93, 77.6", got.Positions)
		}
		time.Sleep(200 * time.Millisecond)
	}
	p.click("#share-gps")
	p.wait("sharing stopped", `document.querySelector("#share-gps").innerText === "Share my GPS"`, 5*time.Second)
	p.clean()
}

// A station name that looks like markup is shown as text everywhere,
// the map's tooltips included.
func TestBrowserStationNamesAreText(t *testing.T) {
	url := pgtest.URL(t)
	s := startServer(t, url, nil)
	ops := operator(t, s, url)
	name := `<b id="injected">HSR</b>`
	ops.must(200, "PATCH", "/api/v1/stations/hsr", map[string]any{"name": name})
	b := newBrowser(t)
	p := b.open(t, s.URL, "rider", desktop)
	p.signUp("rider", "Tara", fmt.Sprintf("tara-%d@example.com", time.Now().UnixNano()))
	p.waitText("#station-list", name, 10*time.Second)
	// Hover every station so Leaflet builds its tooltip.
	eval[bool](p, `[...document.querySelectorAll("path.leaflet-interactive")].forEach(e => e.dispatchEvent(new MouseEvent("mouseover", {bubbles: true}))) || true`)
	p.wait("the tooltip with the name", fmt.Sprintf(`[...document.querySelectorAll(".leaflet-tooltip")].some(e => e.textContent.includes(%q))`, name), 5*time.Second)
	if eval[bool](p, `!!document.querySelector("#injected")`) {
		t.Fatal("a station name became markup")
	}
	p.clean()
}
