package dash

import (
	"context"
	"testing"
	"time"

	"hearth/storage"
	"hearth/web/api"
	"hearth/web/eh"
)

// runningServer creates a server of user's from the library image with a
// VNC password, waits for its boot drive's copy and starts it; it returns
// the server's UUID.
func runningServer(t *testing.T, e *env, user api.Caller, name, password string) string {
	t.Helper()
	ctx := context.Background()
	c, err := e.service.CreateServerWithDrive(ctx, user, api.ServerWithDrive{
		Config: eh.Props{"name": name, "cpu": "1000", "mem": "256", "persistent": "true", "vnc:password": password},
		Source: e.library(t, user), DriveName: name + " boot", DriveSize: 64 << 20, Start: true})
	if err != nil {
		t.Fatal(err)
	}
	if c.Imaging {
		e.waitImaged(t, user, c.Drive)
		if err := e.service.ServerAction(ctx, user, c.Server, "start"); err != nil {
			t.Fatal(err)
		}
	}
	return c.Server
}

// graphsBefore starts graphs1 with two hours of history: 1 KiB/s in and
// a 3 MiB/s burst 20 minutes ago.
func graphsBefore(t *testing.T, e *env, user api.Caller) {
	id := runningServer(t, e, user, "graphs1", "graphs12")
	now := time.Now()
	var readings []storage.ServerSample
	for ago := 2 * time.Hour; ago >= 0; ago -= sampleEvery {
		rx := 1024.0
		if ago == 20*time.Minute {
			rx = 3 << 20
		}
		readings = append(readings, storage.ServerSample{Server: id, Sample: storage.Sample{Time: now.Add(-ago), Rx: rx, Tx: 512,
			Usage: true, CPU: 2e8, Memory: 24 << 20}})
	}
	if err := e.store.RecordSamples(context.Background(), readings); err != nil {
		t.Fatal(err)
	}
}

// consolePhoneBefore starts phone1, whose console the scenario opens on a phone.
func consolePhoneBefore(t *testing.T, e *env, user api.Caller) {
	runningServer(t, e, user, "phone1", "phone123")
}
