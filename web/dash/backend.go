package dash

import (
	"context"
	"io"

	"hearth/storage"
	"hearth/web/api"
	"hearth/web/eh"
)

// User is the logged-in account: the API's caller.
type User = api.Caller

// Backend is the operations layer the dashboard drives: the same operations,
// validation and error messages as the ElasticHosts API, scoped to the
// calling user (another user's object is "missing", an admin sees all).
// Errors are *eh.Error values (or wrap one); their Message is shown to the
// user as it is.
type Backend interface {
	Accounts
	Servers
	Drives
	Resources
	Library
	// Events returns what happened to a server or drive the caller may
	// see, newest first.
	Events(ctx context.Context, caller User, object string, limit int) ([]storage.Event, error)
}

// Accounts checks logins and manages users.
type Accounts interface {
	// Authenticate checks a login (user UUID or name) and secret, as Basic auth does.
	Authenticate(ctx context.Context, login, secret string) (User, error)
	// User reloads a session's user; it fails once the user is removed.
	User(ctx context.Context, id string) (User, error)
	// Users, CreateUser and RemoveUser are for admins only.
	Users(ctx context.Context, caller User) ([]User, error)
	CreateUser(ctx context.Context, caller User, name string, admin bool) (created User, secret string, err error)
	RemoveUser(ctx context.Context, caller User, id string) error
	// UserInfo is a user's info with limit:NAME and usage:NAME keys: one's
	// own, any user's for an admin. SetUser changes limits (admins only).
	UserInfo(ctx context.Context, caller User, login string) (eh.Props, error)
	UsersInfo(ctx context.Context, caller User) ([]eh.Props, error)
	SetUser(ctx context.Context, caller User, login string, changes eh.Props) (eh.Props, error)
}

// Servers runs the server operations of the API.
type Servers interface {
	ServersInfo(ctx context.Context, caller User) ([]eh.Props, error)
	ServerInfo(ctx context.Context, caller User, id string) (eh.Props, error)
	// ServersCounters and ServerCounters are the servers' counters as numbers.
	ServersCounters(ctx context.Context, caller User) ([]api.ServerCounters, error)
	ServerCounters(ctx context.Context, caller User, id string) (api.ServerCounters, error)
	CreateServer(ctx context.Context, caller User, config eh.Props, start bool) (eh.Props, error)
	// CreateServerWithDrive makes a server with its boot drive, removing
	// what it made when a step fails (errors are *api.CreateError).
	CreateServerWithDrive(ctx context.Context, caller User, want api.ServerWithDrive) (api.Created, error)
	SetServer(ctx context.Context, caller User, id string, changes eh.Props) (eh.Props, error)
	// ServerAction runs start, stop, shutdown, reset, pause, resume or destroy.
	ServerAction(ctx context.Context, caller User, id, action string) error
	// ServerConsole returns the last 64 KiB the guest printed.
	ServerConsole(ctx context.Context, caller User, id string) ([]byte, error)
}

// Drives runs the drive operations of the API.
type Drives interface {
	DrivesInfo(ctx context.Context, caller User) ([]eh.Props, error)
	// SharedDrives lists the library images and the drives other users let
	// the caller read, saying whose each is and which an admin published.
	SharedDrives(ctx context.Context, caller User) ([]api.SharedDrive, error)
	DriveInfo(ctx context.Context, caller User, id string) (eh.Props, error)
	CreateDrive(ctx context.Context, caller User, props eh.Props) (eh.Props, error)
	SetDrive(ctx context.Context, caller User, id string, changes eh.Props) (eh.Props, error)
	DestroyDrive(ctx context.Context, caller User, id string) error
	// ImageDrive starts copying source into target; conversion is "", "gzip" or "gunzip".
	ImageDrive(ctx context.Context, caller User, target, source, conversion string) error
	// WriteDrive writes body at offset; gzipped bodies are decompressed first.
	WriteDrive(ctx context.Context, caller User, id string, offset int64, body io.Reader, gzipped bool) error
	// OpenDrive opens up to size bytes from offset for reading; the drive keeps
	// its length and contents until the reader is closed, so its Size is what
	// a download can promise in Content-Length.
	OpenDrive(ctx context.Context, caller User, id string, offset, size int64) (*storage.DriveReader, error)
}

// Resources runs the static IP and VLAN operations of the API.
type Resources interface {
	// ResourcesInfo lists resources of one type ("ip", "vlan").
	ResourcesInfo(ctx context.Context, caller User, typ string) ([]eh.Props, error)
	CreateResource(ctx context.Context, caller User, typ string, props eh.Props) (eh.Props, error)
	SetResource(ctx context.Context, caller User, typ, id string, changes eh.Props) (eh.Props, error)
	DestroyResource(ctx context.Context, caller User, typ, id string) error
}
