package api

import (
	"context"
	"strconv"

	"hearth/web/eh"
)

// ServerWithDrive says what CreateServerWithDrive makes: a server and its
// boot drive at ide:0:0.
type ServerWithDrive struct {
	// Config is the server's configuration, without boot drive keys.
	Config eh.Props
	// Attach is one of the caller's drives to boot from as it is; when
	// set, no drive is made and the fields below are ignored.
	Attach string
	// Source is a drive the caller may read to image the new boot drive
	// from ("" for a blank drive); Conversion is "" or "gunzip".
	Source, Conversion string
	// DriveName and DriveSize (bytes) describe the new boot drive.
	DriveName string
	DriveSize int64
	// Start starts the server once it is built, unless its boot drive is
	// still imaging: then Created.Imaging says so and the caller starts it
	// when the copy has finished.
	Start bool
}

// Created is what CreateServerWithDrive made.
type Created struct {
	Server  string // the server's UUID
	Drive   string // its boot drive's UUID
	Imaging bool   // the boot drive is being imaged from Source
	Started bool   // the server was started
}

// The steps of CreateServerWithDrive, as CreateError names them.
const (
	StepServer = "server" // creating the server
	StepDrive  = "drive"  // creating the boot drive
	StepImage  = "image"  // starting to image it
	StepAttach = "attach" // attaching it as the boot drive
	StepStart  = "start"  // starting the server (what was made stays)
)

// CreateError says which step of CreateServerWithDrive failed. Its Err is
// an *eh.Error like every Service error.
type CreateError struct {
	Step string
	Err  error
}

func (e *CreateError) Error() string { return e.Err.Error() }
func (e *CreateError) Unwrap() error { return e.Err }

// CreateServerWithDrive makes a server stopped, then its boot drive (or
// takes an existing one), starts imaging it, attaches it and starts the
// server. A failure before the start removes what was made, so nothing is
// left half-built; a failed start keeps the server and drive, and returns
// what was made with a CreateError of StepStart.
func (s *Service) CreateServerWithDrive(ctx context.Context, c Caller, want ServerWithDrive) (Created, error) {
	srv, err := s.CreateServer(ctx, c, want.Config, false)
	if err != nil {
		return Created{}, &CreateError{Step: StepServer, Err: err}
	}
	made := Created{Server: srv["server"], Drive: want.Attach}
	var undo []func()
	fail := func(step string, err error) (Created, error) {
		// Undo on a context that outlives the request's cancellation.
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		return Created{}, &CreateError{Step: step, Err: err}
	}
	cleanup := context.WithoutCancel(ctx)
	undo = append(undo, func() {
		if err := s.ServerAction(cleanup, c, made.Server, ActionDestroy); err != nil {
			s.log.Warn("removing a half-created server", "user", c.ID, "server", made.Server, "err", err)
		}
	})
	if want.Attach == "" {
		drive, err := s.CreateDrive(ctx, c, eh.Props{"name": want.DriveName, "size": strconv.FormatInt(want.DriveSize, 10)})
		if err != nil {
			return fail(StepDrive, err)
		}
		made.Drive = drive["drive"]
		undo = append(undo, func() {
			if err := s.DestroyDrive(cleanup, c, made.Drive); err != nil {
				s.log.Warn("removing the drive of a failed create", "user", c.ID, "drive", made.Drive, "err", err)
			}
		})
		if want.Source != "" {
			if err := s.ImageDrive(ctx, c, made.Drive, want.Source, want.Conversion); err != nil {
				return fail(StepImage, err)
			}
			made.Imaging = true
		}
	}
	if _, err := s.SetServer(ctx, c, made.Server, eh.Props{"ide:0:0": made.Drive, "boot": "ide:0:0"}); err != nil {
		return fail(StepAttach, err)
	}
	if want.Start && !made.Imaging {
		if err := s.ServerAction(ctx, c, made.Server, ActionStart); err != nil {
			return made, &CreateError{Step: StepStart, Err: err}
		}
		made.Started = true
	}
	return made, nil
}
