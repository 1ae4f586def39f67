package notify

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lastmile/lastmile/internal/identity"
)

// messageType is a shortcut, never a second opinion: whatever it reads,
// json.Unmarshal (which handleMessage falls back to) reads the same.
func FuzzMessageTypeAgreesWithEncodingJSON(f *testing.F) {
	for _, s := range []string{
		`{"type":"location","lat":1,"lng":2}`, `{"type": "ping"}`, `{"lat": 1}`, `{"type":1}`, `{"type":null}`,
		`{"TYPE":"ping"}`, `{"type":"a","type":"b"}`, `{"type":"ping","x":{}}`, `not json`, `{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		typ, ok := messageType(data)
		if !ok {
			return
		}
		var env struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(data, &env); err != nil {
			t.Fatalf("messageType read %q, encoding/json refused it: %v", data, err)
		}
		if env.Type != typ {
			t.Fatalf("messageType(%q) = %q, encoding/json %q", data, typ, env.Type)
		}
	})
}

// Messages are read into reused buffers: a short message after a long one
// reaches its handler exactly as sent, and a bad one gets exactly the
// error it would get on a fresh socket, with nothing of the message
// before it.
func TestReusedReadBuffersCarryNothingOver(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.replica(t, testConfig())
	driver := e.user(t, identity.RoleDriver)
	var (
		mu  sync.Mutex
		got []string
	)
	a.svc.Handle("echo", func(_ context.Context, _ identity.Principal, raw json.RawMessage) error {
		mu.Lock()
		got = append(got, string(raw))
		mu.Unlock()
		return nil
	})
	long := `{"type":"echo","pad":"` + strings.Repeat("x", 3000) + `"}`
	short := `{"type":"echo"}`
	bad := `{"type":"echo",`
	var want error
	{
		var env struct{ Type string }
		want = json.Unmarshal([]byte(bad), &env)
	}

	c := a.connect(t, driver, "")
	for range 3 {
		c.SendRaw([]byte(long))
		c.SendRaw([]byte(short))
		c.SendRaw([]byte(long))
		c.SendRaw([]byte(bad))
		m := c.Next()
		if m.Type != "error" || m.Code != "malformed" || m.Message != "the message is not a JSON object: "+want.Error() {
			t.Fatalf("after a long message, %s got %+v, want the error of that message alone (%v)", bad, m, want)
		}
	}
	c.ExpectQuiet()
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 9 {
		t.Fatalf("handler got %d messages, want 9", len(got))
	}
	for i, g := range got {
		w := []string{long, short, long}[i%3]
		if g != w {
			t.Errorf("message %d reached the handler as %.60q…, want %.60q…", i, g, w)
		}
	}
}

// A socket with nothing to write holds no writer goroutine; what is queued
// later still arrives, in order.
func TestIdleSocketHoldsNoWriter(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.replica(t, testConfig())
	u := e.user(t, identity.RoleRider)
	c := a.connect(t, u, "")
	c.ExpectQuiet()
	a.svc.hub.mu.Lock()
	var k *socket
	for s := range a.svc.hub.streams[u].sockets {
		k = s
	}
	a.svc.hub.mu.Unlock()
	idle := func() bool {
		k.wmu.Lock()
		defer k.wmu.Unlock()
		return !k.writerOn
	}
	eventually(t, 5*time.Second, "the writer to exit", idle)
	for range 3 {
		ev := e.append(t, a.svc, u, "trip.updated", nil)
		c.ExpectSeqs(ev.Seq)
		eventually(t, 5*time.Second, "the writer to exit", idle)
	}
	c.ExpectQuiet()
}
