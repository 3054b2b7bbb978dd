package containerd

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"

	"github.com/moby/sys/mountinfo"

	"hearth/vmm/guest"
)

// intentFile, in DATA/run/ID, records what a Start has acquired before the
// guest's container (and its labels) exist, so that what a Hearth killed in
// between left behind is released by the next one.
const intentFile = "starting.json"

type intent struct {
	Loops []loopDevice `json:"loops"`
}

func (h *Host) recordIntent(id string, in intent) error {
	dir := filepath.Join(h.runDir, id)
	// Searchable by guests (see searchableByGuests); its files are not readable.
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return err
	}
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, intentFile), b, 0o600)
}

// sweepRunDir releases what guests that never got (or no longer have) a
// container left in DATA/run: roots mounted, live systems' upper layers,
// loop devices, and cgroups of a Start that was cut short, and console
// FIFOs of a Delete that was. Directories of others
// (image imports') are left alone.
func (h *Host) sweepRunDir(ctx context.Context) {
	entries, _ := os.ReadDir(h.runDir)
	for _, e := range entries {
		id := e.Name()
		if _, known := h.guests[id]; known || !e.IsDir() || !guest.ValidID(id) || id == runcDirName {
			continue
		}
		dir := filepath.Join(h.runDir, id)
		b, err := os.ReadFile(filepath.Join(dir, intentFile))
		fifos, _ := filepath.Glob(filepath.Join(dir, "*", id+"-stdout"))
		mounted, _ := mountinfo.Mounted(filepath.Join(dir, rootDirName))
		_, liveErr := os.Stat(filepath.Join(dir, liveDirName)) // a live system's throwaway layer
		if err != nil && len(fifos) == 0 && !mounted && liveErr != nil {
			continue
		}
		var in intent
		json.Unmarshal(b, &in)
		h.log.Info("releasing what an interrupted start or delete left", "server", id)
		for _, l := range in.Loops {
			if err := l.detach(); err != nil {
				h.log.Error("detaching a loop device", "server", id, "err", err)
			}
		}
		if err := h.removeRunDir(id); err != nil {
			h.log.Error("removing a guest's run directory", "server", id, "err", err)
		}
		removeCgroups(h.namespace, id, false)
	}
}
