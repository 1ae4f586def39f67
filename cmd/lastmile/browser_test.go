package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// The browser tests drive Debian's headless chromium with chromedp against
// a real server on a real Postgres. In CI (CI set) a missing chromium fails
// them; elsewhere they skip with a message.

//go:embed testdata/axe.min.js
var axeSource string

// clientError matches the browser's log line for an HTTP 4xx answer.
var clientError = regexp.MustCompile(`status of 4\d\d `)

// screenshotDir is where the test run saves each main screen, for the README.
const screenshotDir = "../../docs/screenshots"

func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browser is one headless chromium; each page gets its own browser context
// (its own cookies and storage), like a separate person's phone.
type browser struct {
	ctx context.Context
}

func newBrowser(tb testing.TB) *browser {
	tb.Helper()
	path := chromiumPath()
	if path == "" {
		if os.Getenv("CI") != "" {
			tb.Fatal("chromium is not installed; .ci/run installs it (apt-get install chromium)")
		}
		tb.Skip("browser tests skipped: chromium is not installed (apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	tb.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		tb.Fatalf("start chromium: %v", err)
	}
	return &browser{ctx: ctx}
}

// page is one tab in its own browser context. It records console errors,
// uncaught exceptions and failed loads (but map tiles, which cannot load on
// a machine without internet).
type page struct {
	tb       testing.TB
	ctx      context.Context
	base     string
	name     string
	mu       sync.Mutex
	problems []string
	// allowNetErrors tolerates failed requests (a test that stops the server).
	allowNetErrors bool
}

type viewport struct {
	name          string
	width, height int64
	mobile        bool
}

var (
	phone   = viewport{"phone", 360, 740, true}
	desktop = viewport{"desktop", 1280, 800, false}
)

func (b *browser) open(tb testing.TB, base, name string, vp viewport) *page {
	tb.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	tb.Cleanup(cancel)
	p := &page{tb: tb, ctx: ctx, base: base, name: name}
	if err := chromedp.Do(ctx); err != nil {
		tb.Fatalf("open a tab: %v", err)
	}
	err := chromedp.Listen(ctx, func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			p.problem("exception: " + e.ExceptionDetails.Text + " " + describe(e.ExceptionDetails.Exception))
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError {
				var parts []string
				for _, a := range e.Args {
					parts = append(parts, describe(a))
				}
				p.problem("console.error: " + strings.Join(parts, " "))
			}
		case *cdplog.EventEntryAdded:
			en := e.Entry
			if en.Level != cdplog.EntryLevelError || strings.Contains(en.URL, "tile.openstreetmap.org") {
				return
			}
			if strings.Contains(en.Text, "does not support the Push API in incognito mode") {
				return // each test person's browser context is incognito; Chrome says so when the app subscribes
			}
			if en.Source == cdplog.EntrySourceNetwork && strings.Contains(en.URL, "/api/v1/") && clientError.MatchString(en.Text) {
				// The API refusing something (a wrong password, a 409, "no
				// active route") is logged by the browser; the app shows
				// it, and the tests check what it shows.
				return
			}
			p.mu.Lock()
			allow := p.allowNetErrors
			p.mu.Unlock()
			if allow && (en.Source == cdplog.EntrySourceNetwork || strings.Contains(en.Text, "WebSocket")) {
				return
			}
			p.problem(fmt.Sprintf("log %s: %s %s", en.Source, en.Text, en.URL))
		}
	})
	if err != nil {
		tb.Fatal(err)
	}
	p.resize(vp)
	return p
}

func describe(o *runtime.RemoteObject) string {
	if o == nil {
		return ""
	}
	if o.Description != "" {
		return o.Description
	}
	return string(o.Value)
}

func (p *page) problem(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.problems = append(p.problems, s)
}

// clean fails the test if the page logged an error.
func (p *page) clean() {
	p.tb.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.problems {
		p.tb.Errorf("%s page: %s", p.name, s)
	}
	p.problems = nil
}

func (p *page) resize(vp viewport) {
	p.tb.Helper()
	var opts []chromedp.EmulateViewportOption
	if vp.mobile {
		opts = append(opts, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait)
	}
	p.do(chromedp.EmulateViewport(vp.width, vp.height, opts...))
}

// do runs actions, failing the test after 30 s or at the first error.
func (p *page) do(actions ...chromedp.Action[chromedp.Void]) {
	p.tb.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.tb.Fatalf("%s page: %v (problems so far: %v)", p.name, err, p.problems)
	}
}

func (p *page) nav(path string) {
	p.tb.Helper()
	p.do(chromedp.Navigate(p.base+path), chromedp.WaitReady(chromedp.CSS("body")))
}

func (p *page) click(sel string) {
	p.tb.Helper()
	for try := 0; ; try++ {
		p.wait(sel+" to be there and enabled", fmt.Sprintf(`(e => !!e && !e.disabled)(document.querySelector(%q))`, sel), 10*time.Second)
		ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
		err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
		cancel()
		if err == nil {
			return
		}
		// The page may replace the element between finding and clicking
		// it (a live update re-rendered it): find it again.
		if try == 2 || !strings.Contains(err.Error(), "Could not find node") {
			p.tb.Fatalf("%s page: click %s: %v (problems so far: %v)", p.name, sel, err, p.problems)
		}
	}
}

func (p *page) fill(sel, text string) {
	p.tb.Helper()
	p.wait(sel, fmt.Sprintf(`(e => !!e && (e.value = "", true))(document.querySelector(%q))`, sel), 10*time.Second)
	p.do(chromedp.SendKeys(chromedp.CSS(sel), text))
}

// choose sets a select's value.
func (p *page) choose(sel, value string) {
	p.tb.Helper()
	p.do(chromedp.SetValue(chromedp.CSS(sel), value))
}

// eval evaluates a JavaScript expression and decodes its value.
func eval[T any](p *page, expr string) T {
	p.tb.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.tb.Fatalf("%s page: evaluate %s: %v", p.name, expr, err)
	}
	return v
}

// evalAwait evaluates an expression that yields a promise and decodes
// what it resolves to.
func evalAwait[T any](p *page, expr string) T {
	p.tb.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		p.tb.Fatalf("%s page: evaluate %s: %v", p.name, expr, err)
	}
	return v
}

// wait waits until the JavaScript expression is truthy.
func (p *page) wait(what, expr string, timeout time.Duration) {
	p.tb.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, timeout+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(100*time.Millisecond)))
	if err != nil {
		var body string
		body, _ = chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.querySelector("main").innerText`))
		p.tb.Fatalf("%s page: waiting for %s: %v\npage text:\n%s\nproblems: %v", p.name, what, err, body, p.problems)
	}
}

// text is the visible text of the first element matching sel ("" if none).
func (p *page) text(sel string) string {
	p.tb.Helper()
	return eval[string](p, fmt.Sprintf(`(document.querySelector(%q) || {innerText: ""}).innerText`, sel))
}

// waitText waits until the element matching sel shows want.
func (p *page) waitText(sel, want string, timeout time.Duration) {
	p.tb.Helper()
	p.wait(fmt.Sprintf("%s to show %q", sel, want), fmt.Sprintf(`(document.querySelector(%q) || {innerText: ""}).innerText.includes(%q)`, sel, want), timeout)
}

// shot saves a screenshot of the viewport to docs/screenshots/NAME-VP.png.
func (p *page) shot(name string, vp viewport) {
	p.tb.Helper()
	p.resize(vp)
	time.Sleep(300 * time.Millisecond) // let the map redraw at the new size
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.tb.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(screenshotDir, 0o755); err != nil {
		p.tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(screenshotDir, name+"-"+vp.name+".png"), png, 0o644); err != nil {
		p.tb.Fatal(err)
	}
}

// axe runs axe-core (injected from testdata, so the page's CSP does not
// apply) and fails on serious or critical violations.
func (p *page) axe(screen string) {
	p.tb.Helper()
	if !eval[bool](p, `typeof axe !== "undefined"`) {
		eval[chromedp.Void](p, axeSource+";undefined")
	}
	ctx, cancel := context.WithTimeout(p.ctx, 60*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](`axe.run(document).then(r => ({passes: r.passes.length, violations: r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map(n => n.target.join(" "))}))}))`,
		chromedp.EvalAwaitPromise))
	if err != nil {
		p.tb.Fatalf("axe on %s: %v", screen, err)
	}
	var res struct {
		Passes     int
		Violations []struct {
			ID, Impact, Help string
			Nodes            []string
		}
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		p.tb.Fatalf("axe on %s: %v: %s", screen, err, raw)
	}
	if res.Passes < 10 {
		p.tb.Fatalf("axe on %s: only %d rules passed; is the page there?", screen, res.Passes)
	}
	violations := res.Violations
	minor := 0
	for _, v := range violations {
		if v.Impact == "serious" || v.Impact == "critical" {
			p.tb.Errorf("axe on %s: %s violation %s (%s) at %v", screen, v.Impact, v.ID, v.Help, v.Nodes)
		} else {
			minor++
			p.tb.Logf("axe on %s: %s: %s (%s)", screen, v.Impact, v.ID, v.Help)
		}
	}
	p.tb.Logf("axe on %s: %d rules passed, %d serious or critical violations, %d minor or moderate", screen, res.Passes, len(violations)-minor, minor)
}

// deny refuses the page's browser context a permission, as a person
// tapping "Block" would.
func (p *page) deny(permission string) {
	p.tb.Helper()
	p.setPermission(permission, cdpbrowser.PermissionSettingDenied)
}

func (p *page) setPermission(permission string, setting cdpbrowser.PermissionSetting) {
	p.tb.Helper()
	c := chromedp.FromContext(p.ctx)
	_, err := chromedp.CallBrowser(p.ctx, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
		Permission: &cdpbrowser.PermissionDescriptor{Name: permission}, Setting: setting,
		BrowserContextID: c.BrowserContextID,
	})
	if err != nil {
		p.tb.Fatalf("set %s to %s: %v", permission, setting, err)
	}
}

// locate grants the page geolocation and puts the device at lat, lng.
func (p *page) locate(lat, lng float64) {
	p.tb.Helper()
	p.setPermission("geolocation", cdpbrowser.PermissionSettingGranted)
	accuracy := 10.0
	if _, err := chromedp.Call(p.ctx, emulation.SetGeolocationOverride, emulation.SetGeolocationOverrideParams{Latitude: &lat, Longitude: &lng, Accuracy: &accuracy}); err != nil {
		p.tb.Fatalf("set the position: %v", err)
	}
}

// signUp fills the sign-up form.
func (p *page) signUp(role, name, email string) {
	p.tb.Helper()
	p.nav("/signup")
	p.fill("#f-name", name)
	p.fill("#f-email", email)
	p.fill("#f-password", "a long password")
	p.click(fmt.Sprintf(`input[name="role"][value=%q]`, role))
	p.click(`form button[type="submit"]`)
	p.wait("the "+role+" screen", fmt.Sprintf(`location.pathname === "/%s" && !!document.querySelector(".screen")`, role), 10*time.Second)
}

func (p *page) signIn(email, password string) {
	p.tb.Helper()
	p.nav("/signin")
	p.fill("#f-email", email)
	p.fill("#f-password", password)
	p.click(`form button[type="submit"]`)
}

// createOperator makes an operator account with the CLI.
func createOperator(tb testing.TB, dbURL, email, password string) {
	tb.Helper()
	var out, errOut strings.Builder
	err := run(context.Background(), []string{"lastmile", "user", "create", "--role", "operator", "--email", email, "--name", "Ops", "--log-format", "json"},
		func(k string) string { return map[string]string{"DATABASE_URL": dbURL}[k] }, strings.NewReader(password+"\n"), &out, &errOut)
	if err != nil {
		tb.Fatalf("create operator: %v %s", err, errOut.String())
	}
}
