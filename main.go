// Command hearth is the Hearth hypervisor appliance: one binary that runs
// guest servers through containerd and serves the ElasticHosts API, the
// dashboard and the VNC consoles on one port.
//
//	hearth [serve] [flags]                      run the appliance until SIGINT/SIGTERM
//	hearth user add NAME [--admin]              create a user, print its UUID and secret
//	hearth user list                            list users
//	hearth user set NAME limit:KEY VALUE...     set a user's limits (quotas)
//	hearth image import --name NAME [--size SIZE] FILE
//	                                            make a library drive from an image
//	hearth version                              version and build information
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"

	"hearth/console"
	"hearth/internal/hostpath"
	"hearth/internal/instance"
	"hearth/internal/peerlimit"
	"hearth/internal/ratelimit"
	"hearth/storage"
	"hearth/storage/rootfs"
	"hearth/vmm"
	"hearth/vmm/containerd"
	"hearth/vmm/network"
	"hearth/web"
	"hearth/web/api"
	"hearth/web/certs"
	"hearth/web/dash"
	"hearth/web/eh"
)

// version is set at build time: -ldflags "-X main.version=...".
var version = "dev"

func main() {
	log.SetFlags(log.LstdFlags | log.LUTC)
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// usageError is a command-line mistake: exit status 2 with the message.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// maxConnsPerAddress caps the connections one client address holds open
// on the API and dashboard port: far above what a browser (six per host)
// or an API client opens, far below what starves the port.
const maxConnsPerAddress = 128

// noNetworkReason is what the dashboard's forms say when the guest network
// could not be set up: a server with a NIC would not start.
const noNetworkReason = "This Hearth has no guest network (it could not be set up; the host's log says why), so servers cannot have a network interface."

const usage = `usage:
  hearth [serve] [--listen ADDR] [--data DIR] [--instance NAME] [--containerd SOCKET] [--runtime NAME]
                 [--tls auto] [--tls-cert FILE --tls-key FILE] [--vnc-listen IP] [--subnet CIDR] [--prefix PATH]
                 [--bridge NAME] [--nat true] [--guest-api true] [--dns IP[,IP]] [--shutdown-grace DURATION]
                 [--disk-overcommit RATIO] [--log-format text|json] [--log-level LEVEL]
  hearth user add NAME [--admin] [--data DIR]
  hearth user list [--data DIR]
  hearth user set NAME [limit:servers N] [limit:cpu MHZ] [limit:mem SIZE] [limit:drives SIZE]
                       [limit:ips N] [limit:vlans N] [--data DIR]     (a value of none removes a limit)
  hearth user secret NAME [--data DIR]     (a new secret; the old one and the user's sessions end)
  hearth image import --name NAME [--size SIZE] [--data DIR] FILE
  hearth version
`

func run(args []string, stdout, stderr io.Writer) int {
	err := dispatch(args, stdout, stderr)
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, usage)
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "hearth: %v\n%s", err, usage)
		return 2
	}
	fmt.Fprintf(stderr, "hearth: %v\n", err)
	return 1
}

func dispatch(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return serve(args, stderr)
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stderr)
	case "user":
		if len(args) < 2 {
			return usagef("user: want add, list, set or secret")
		}
		switch args[1] {
		case "add":
			return userAdd(args[2:], stdout, stderr)
		case "list":
			return userList(args[2:], stdout, stderr)
		case "set":
			return userSet(args[2:], stdout, stderr)
		case "secret":
			return userSecret(args[2:], stdout, stderr)
		}
		return usagef("user %s: want add, list, set or secret", args[1])
	case "image":
		if len(args) < 2 || args[1] != "import" {
			return usagef("image: want import")
		}
		return imageImport(args[2:], stdout, stderr)
	case "version":
		printVersion(stdout)
		return nil
	case "help", "-h", "--help":
		return flag.ErrHelp
	}
	return usagef("unknown command %q", args[0])
}

// env returns the environment variable's value, or def when it is unset.
func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func dataFlag(fs *flag.FlagSet) *string {
	return fs.String("data", env("HEARTH_DATA", "/var/lib/hearth"), "`dir`ectory of all Hearth's state (env HEARTH_DATA)")
}

// parse parses flags and positional arguments in any order
// (`user add NAME --admin --data DIR` as well as `user add --admin NAME`).
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// openState opens DATA for a short command that may run beside `serve`.
func openState(dir string) (*storage.Store, error) {
	return storage.Open(dir, storage.WithoutMaintenance())
}

func userAdd(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("user add", stderr)
	admin := fs.Bool("admin", false, "the user administers Hearth and sees every object")
	data := dataFlag(fs)
	rest, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usagef("user add: want exactly one NAME")
	}
	store, err := openState(*data)
	if err != nil {
		return err
	}
	defer store.Close()
	u, secret, err := store.CreateUser(context.Background(), rest[0], *admin)
	if err != nil {
		return fmt.Errorf("user name: %w", err) // storage words the refusal for a form's name field
	}
	fmt.Fprintf(stdout, "user %s\nsecret %s\n", u.ID, secret)
	return nil
}

// userSecret gives a user a new secret and prints it as user add does. The
// old secret stops working and the user's dashboard sessions end; a first
// admin's DATA/admin.credentials that named the old secret is removed, so
// that no stale secret stays on disk or on the appliance's console banner.
func userSecret(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("user secret", stderr)
	data := dataFlag(fs)
	rest, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usagef("user secret: want exactly one NAME")
	}
	store, err := openState(*data)
	if err != nil {
		return err
	}
	defer store.Close()
	u, secret, err := store.RotateSecret(context.Background(), rest[0])
	if err != nil {
		return err
	}
	creds := filepath.Join(store.Dir(), adminCredentials)
	if b, err := os.ReadFile(creds); err == nil && strings.Contains(string(b), "user "+u.ID+"\n") {
		if err := os.Remove(creds); err != nil {
			return fmt.Errorf("removing the stale %s: %w", creds, err)
		}
	}
	fmt.Fprintf(stdout, "user %s\nsecret %s\n", u.ID, secret)
	return nil
}

func userList(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("user list", stderr)
	data := dataFlag(fs)
	rest, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return usagef("user list: no arguments expected")
	}
	store, err := openState(*data)
	if err != nil {
		return err
	}
	defer store.Close()
	users, err := store.Users(context.Background())
	if err != nil {
		return err
	}
	for _, u := range users {
		line := u.ID + " " + u.Name
		if u.Admin {
			line += " admin"
		}
		fmt.Fprintln(stdout, line)
	}
	return nil
}

// userSet changes a user's limits: `user set NAME limit:mem 16G limit:servers
// 4` (KEY VALUE pairs, as the API's /users/USER/set takes them; none or an
// empty value removes a limit), then prints the user's limits and usage.
func userSet(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("user set", stderr)
	data := dataFlag(fs)
	rest, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(rest) < 3 || len(rest)%2 != 1 {
		return usagef("user set: want NAME and KEY VALUE pairs, e.g. limit:servers 4")
	}
	changes := eh.Props{}
	for i := 1; i < len(rest); i += 2 {
		changes[rest[i]] = rest[i+1]
	}
	limits, err := api.ParseLimits(changes)
	if err != nil {
		return usageError{eh.AsError(err).Message}
	}
	store, err := openState(*data)
	if err != nil {
		return err
	}
	defer store.Close()
	ctx := context.Background()
	u, err := store.FindUser(ctx, rest[0])
	if err != nil {
		return err
	}
	now, err := store.SetLimits(ctx, u.ID, limits)
	if err != nil {
		return err
	}
	usage, err := store.Usage(ctx, u.ID)
	if err != nil {
		return err
	}
	for _, name := range storage.LimitNames {
		limit := "none"
		if v, ok := now[name]; ok {
			limit = strconv.FormatInt(v, 10)
		}
		fmt.Fprintf(stdout, "limit:%s %s\nusage:%s %d\n", name, limit, name, usage[name])
	}
	return nil
}

// adminCredentials is the file in DATA where the first admin's credentials
// are written.
const adminCredentials = "admin.credentials"

// ensureAdmin creates the first admin when there are no users at all and
// writes its credentials to DATA/admin.credentials (mode 0600). It logs the
// path, never the secret.
func ensureAdmin(ctx context.Context, store *storage.Store, log *slog.Logger) error {
	users, err := store.Users(ctx)
	if err != nil || len(users) > 0 {
		return err
	}
	u, secret, err := store.CreateUser(ctx, "admin", true)
	if err != nil {
		return fmt.Errorf("first admin: %w", err)
	}
	path := filepath.Join(store.Dir(), adminCredentials)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte("user "+u.ID+"\nsecret "+secret+"\n"), 0o600); err != nil {
		return fmt.Errorf("first admin: %w", err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil { // WriteFile keeps the mode of a file left by a crash
		return fmt.Errorf("first admin: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("first admin: %w", err)
	}
	log.Info("created the first admin user; its credentials are in the file named", "user", u.Name, "file", path)
	return nil
}

func imageImport(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("image import", stderr)
	name := fs.String("name", "", "name of the library drive (required)")
	sizeFlag := fs.String("size", "", "drive size (bytes, or with K, M, G, T); default: the content plus headroom")
	data := dataFlag(fs)
	rest, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usagef("image import: want exactly one FILE")
	}
	if *name == "" {
		return usagef("image import: --name is required")
	}
	var opts []rootfs.Option
	if *sizeFlag != "" {
		size, err := eh.ParseSize(*sizeFlag)
		if err != nil {
			return usagef("image import: --size %s: %v", *sizeFlag, err)
		}
		opts = append(opts, rootfs.WithSize(size))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	store, err := openState(*data)
	if err != nil {
		return err
	}
	defer store.Close()
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	if err := ensureAdmin(ctx, store, logger); err != nil {
		return err
	}
	admin, err := store.FirstAdmin(ctx)
	if err != nil {
		return err
	}
	opts = append(opts, rootfs.WithLogger(logger))
	d, res, err := store.ImportImage(ctx, admin.ID, *name, rest[0], opts...)
	if err != nil {
		return fmt.Errorf("image import %s: %w", rest[0], err)
	}
	format := string(res.Format)
	if res.Content != res.Format {
		format += " holding " + string(res.Content)
	}
	logger.Info("imported a library drive", "file", rest[0], "format", format, "name", *name, "drive", d.ID, "bytes", d.Size)
	fmt.Fprintf(stdout, "drive %s\n", d.ID)
	return nil
}

func printVersion(w io.Writer) {
	fmt.Fprintf(w, "hearth %s\n", version)
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	fmt.Fprintf(w, "go %s\n", info.GoVersion)
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision", "vcs.time", "vcs.modified", "GOOS", "GOARCH", "CGO_ENABLED":
			fmt.Fprintf(w, "%s %s\n", s.Key, s.Value)
		}
	}
}

// newLogger builds the logger of serve: text or JSON lines on w, from level up.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level %s: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usagef("--log-format %s: want text or json", format)
}

func serve(args []string, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	listen := fs.String("listen", env("HEARTH_LISTEN", ":8080"), "`address` of the API and dashboard (env HEARTH_LISTEN)")
	data := dataFlag(fs)
	instanceFlag := fs.String("instance", env("HEARTH_INSTANCE", ""), "`name` of this Hearth among several on the host; its containerd namespace, cgroups, bridges and firewall tables are named after it; empty: the name DATA was first served as, else hearth for /var/lib/hearth and a hash of DATA otherwise (env HEARTH_INSTANCE)")
	containerdSocket := fs.String("containerd", env("HEARTH_CONTAINERD", ""), "`socket` of a running containerd; empty: start a private one in DATA/containerd (env HEARTH_CONTAINERD)")
	runtimeName := fs.String("runtime", env("HEARTH_RUNTIME", "auto"), "containerd runtime: io.containerd.kata.v2, io.containerd.runc.v2 or auto (env HEARTH_RUNTIME)")
	vncListen := fs.String("vnc-listen", env("HEARTH_VNC_LISTEN", ""), "`IP` where per-server VNC ports open; empty: the host's address; off: websocket consoles only (env HEARTH_VNC_LISTEN)")
	subnet := fs.String("subnet", env("HEARTH_SUBNET", storage.DefaultSubnet.String()), "IPv4 `CIDR` of the guest address pool; its first address is the gateway (env HEARTH_SUBNET)")
	prefix := fs.String("prefix", env("HEARTH_PREFIX", ""), "optional `path` prefix of the API, e.g. /api (env HEARTH_PREFIX)")
	bridge := fs.String("bridge", env("HEARTH_BRIDGE", ""), "`name` of the public bridge nic:0 joins; empty: the instance's, hearth0 for the instance hearth (env HEARTH_BRIDGE)")
	nat := fs.String("nat", env("HEARTH_NAT", "false"), "`true`: NAT guests' outbound traffic to the host's uplink (env HEARTH_NAT)")
	guestAPI := fs.String("guest-api", env("HEARTH_GUEST_API", "false"), "`true`: guests may reach the API port on the host, which is otherwise closed to them but for DHCP and ICMP (env HEARTH_GUEST_API)")
	dns := fs.String("dns", env("HEARTH_DNS", ""), "DNS servers DHCP hands guests, `IP[,IP]`; empty: the host's resolvers but loopback ones (env HEARTH_DNS)")
	logFormat := fs.String("log-format", env("HEARTH_LOG_FORMAT", "text"), "log line `format`: text or json (env HEARTH_LOG_FORMAT)")
	logLevel := fs.String("log-level", env("HEARTH_LOG_LEVEL", "info"), "lowest `level` logged: debug, info, warn or error (env HEARTH_LOG_LEVEL)")
	overcommit := fs.String("disk-overcommit", env("HEARTH_DISK_OVERCOMMIT", "4"), "thin provisioning `ratio`: drives may together be this many times the size of the filesystem of DATA/drives; past it creates and resizes answer 507 full; 0: no bound (env HEARTH_DISK_OVERCOMMIT)")
	loginFailures := fs.String("login-failures", env("HEARTH_LOGIN_FAILURES", strconv.Itoa(ratelimit.LoginMaxFailures)), "`number` of failed logins (form or Basic auth) allowed per client address and user name in 5 minutes, 4× that per user name (env HEARTH_LOGIN_FAILURES)")
	grace := fs.String("shutdown-grace", env("HEARTH_SHUTDOWN_GRACE", vmm.DefaultGracePeriod.String()), "`duration` a guest gets to power off after shutdown before it is killed (env HEARTH_SHUTDOWN_GRACE)")
	var tlsFlags certs.Config
	tlsFlags.RegisterFlags(fs)
	rest, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return usagef("serve: unexpected argument %q", rest[0])
	}
	pool, err := netip.ParsePrefix(*subnet)
	if err != nil {
		return usagef("--subnet %s: %v", *subnet, err)
	}
	natOn, err := strconv.ParseBool(*nat)
	if err != nil {
		return usagef("--nat %s: want true or false", *nat)
	}
	if *instanceFlag != "" {
		if err := instance.Check(*instanceFlag); err != nil {
			return usagef("--instance: %v", err)
		}
	}
	netOpts := []network.Option{network.WithNAT(natOn)}
	if *bridge != "" {
		netOpts = append(netOpts, network.WithBridge(*bridge))
	}
	if open, err := strconv.ParseBool(*guestAPI); err != nil {
		return usagef("--guest-api %s: want true or false", *guestAPI)
	} else if open {
		_, port, err := net.SplitHostPort(*listen)
		p, perr := strconv.ParseUint(port, 10, 16)
		if err != nil || perr != nil || p == 0 {
			return usagef("--guest-api needs a fixed port in --listen (have %s): the filter is loaded before the API listens", *listen)
		}
		netOpts = append(netOpts, network.WithGuestAPI(uint16(p)))
	}
	if *dns != "" {
		servers, err := network.ParseDNS(*dns)
		if err != nil {
			return usagef("--dns %s: %v", *dns, err)
		}
		netOpts = append(netOpts, network.WithDNS(servers))
	}
	maxLoginFailures, err := strconv.Atoi(*loginFailures)
	if err != nil || maxLoginFailures < 1 {
		return usagef("--login-failures %s: want a whole number of at least 1", *loginFailures)
	}
	graceTime, err := time.ParseDuration(*grace)
	if err != nil || graceTime < 0 {
		return usagef("--shutdown-grace %s: want a duration such as 60s", *grace)
	}
	overcommitRatio, err := strconv.ParseFloat(*overcommit, 64)
	if err != nil || overcommitRatio < 0 || math.IsInf(overcommitRatio, 0) || math.IsNaN(overcommitRatio) {
		return usagef("--disk-overcommit %s: want a ratio such as 4 (or 0 for no bound)", *overcommit)
	}
	logger, err := newLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		return err
	}
	slog.SetDefault(logger)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	hostpath.Register(*data)
	store, err := storage.Open(*data, storage.WithSubnet(pool), storage.WithLogger(logger), storage.WithDiskOvercommit(overcommitRatio))
	if err != nil {
		if errors.Is(err, storage.ErrInvalid) {
			return usagef("--subnet: %v", err)
		}
		return err
	}
	defer store.Close()
	// Imports and uploads a killed process left (those of a `hearth image
	// import` running beside hold their lock and stay).
	if err := rootfs.RemoveStale(store.RunDir()); err != nil {
		logger.Warn("leftovers of interrupted imports not removed", "dir", store.RunDir(), "err", err)
	}
	if err := ensureAdmin(ctx, store, logger); err != nil {
		return err
	}
	name, err := resolveInstance(ctx, store, *instanceFlag, logger)
	if err != nil {
		return err
	}
	claim, err := instance.Claim(name)
	if err != nil {
		return err
	}
	defer claim.Close()
	idBase, idClaim, err := instanceIDBase(ctx, store, name)
	if err != nil {
		return err
	}
	defer idClaim.Close()
	logger.Info("instance", "instance", name, "namespace", instance.Prefixed(name), "ids_from", idBase)
	netOpts = append(netOpts, network.WithInstance(name), network.WithFilterTable(instance.Prefixed(name)))

	tlsFlags.DataDir, tlsFlags.Logger = store.Dir(), logger
	tlsCfg, err := tlsFlags.TLSConfig()
	if err != nil {
		return usageError{err.Error()}
	}

	apiOpts := []api.Option{api.WithLogger(logger)}
	runtimeInUse := "none"
	accelerator := "" // how VM guests run: kvm, tcg, "" = they cannot
	// Guests need containerd; without it Hearth still serves everything else
	// and lifecycle calls answer 500 system "no guest runtime". Deferred
	// closes run after srv.Shutdown: the guests keep running, the private
	// containerd stops, the bridge stays while guests use it. The guest layer
	// gets a context SIGTERM does not cancel: it outlives the signal.
	switch *vncListen {
	case "":
		*vncListen = hostAddress()
	case "off":
		*vncListen = ""
	}
	consoles := console.NewRegistry(console.WithListen(*vncListen), console.WithLogger(logger))
	defer consoles.Close()
	hostOpts := []containerd.Option{containerd.WithContainerd(*containerdSocket), containerd.WithRuntime(*runtimeName), containerd.WithLogger(logger),
		containerd.WithNamespace(instance.Prefixed(name)), containerd.WithIDBase(idBase)}
	managerOpts := []vmm.ManagerOption{vmm.WithConsoles(consoles), vmm.WithGracePeriod(graceTime), vmm.WithLogger(logger),
		vmm.WithNetworkNames(network.NamesOf(name))}
	netm, err := network.New(append(netOpts,
		network.WithGateway(netip.PrefixFrom(store.Gateway(), store.Subnet().Bits())), network.WithLogger(logger))...)
	noNetwork := ""
	if err != nil {
		logger.Warn("guest network unavailable; guests without NICs still run", "err", err)
		noNetwork = noNetworkReason
	} else {
		defer netm.Close()
		hostOpts = append(hostOpts, containerd.WithNetwork(netm))
		managerOpts = append(managerOpts, vmm.WithPublicBridge(netm.Bridge()))
	}
	guestCtx := context.WithoutCancel(ctx)
	if host, err := containerd.Open(guestCtx, store.Dir(), hostOpts...); err != nil {
		logger.Error("guests unavailable", "err", err)
	} else {
		defer host.Close()
		guests, err := vmm.NewManager(guestCtx, host, store, managerOpts...)
		if err != nil {
			return err
		}
		apiOpts = append(apiOpts, api.WithGuests(guests), api.WithConsoleLog(guests))
		runtimeInUse = guests.Backend()
		accelerator = guests.Accelerator()
	}
	svc := api.New(store, apiOpts...)

	// One limit on failed logins, whether through the form or Basic auth.
	logins := ratelimit.NewLogins(maxLoginFailures, time.Now)
	dashboard, err := dash.New(dash.Config{
		ConsoleToken: consoles.Token,
		Sessions:     store,
		History:      store,
		Logins:       logins,
		Backend:      svc,
		Runtime:      runtimeInUse,
		Accelerator:  accelerator,
		DataDir:      store.Dir(),
		NoNetwork:    noNetwork,
		Secure:       tlsCfg != nil,
		Logger:       logger,
	})
	if err != nil {
		return err
	}
	defer dashboard.Close()
	handler := web.New(web.Config{
		Logins:      logins,
		API:         svc,
		Runtime:     func() string { return runtimeInUse },
		Accelerator: func() string { return accelerator },
		Prefix:      *prefix,
		Dashboard:   dashboard,
		Session:     dashboard.SessionCaller,
		Console:     consoles,
		Logger:      logger,
	})

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	ln = peerlimit.Listen(ln, maxConnsPerAddress, logger.With("component", "http"))
	scheme := "http"
	if tlsCfg != nil {
		ln, scheme = certs.NewListener(ln, tlsCfg), "https"
	}
	srv := &http.Server{
		Handler: handler,
		// Bodies and answers get their deadlines per request (web,
		// internal/httpdeadline): uploads and downloads may take hours.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.With("component", "http").Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	logger.Info(fmt.Sprintf("serving %s://%s", scheme, ln.Addr()), "version", version, "data", store.Dir(), "guests", runtimeInUse)
	notifyReady(logger)

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		logger.Warn("shutdown", "err", err)
	}
	return nil
}

// resolveInstance names this Hearth (see package instance): --instance
// when given, else the name DATA was served as before, else the default
// for DATA, which for a database from before instances (one that has
// servers and no instance recorded) is "hearth", the names it ran under.
// The name is recorded. A rename is refused while servers run: their
// guests, named after the old instance, would be neither adopted nor
// stopped, and started a second time.
func resolveInstance(ctx context.Context, store *storage.Store, flagged string, log *slog.Logger) (string, error) {
	recorded, err := store.Meta(ctx, metaInstance, func() (string, error) {
		if flagged != "" {
			return flagged, nil
		}
		servers, err := store.ServersByStatus(ctx, storage.StatusStopped, storage.StatusActive, storage.StatusPaused, storage.StatusDead)
		if err != nil || len(servers) > 0 {
			return instance.Legacy, err
		}
		return instance.FromData(store.Dir())
	})
	if err != nil {
		return "", err
	}
	if flagged == "" || flagged == recorded {
		return recorded, instance.Check(recorded)
	}
	running, err := store.ServersByStatus(ctx, storage.StatusActive, storage.StatusPaused)
	if err != nil {
		return "", err
	}
	if len(running) > 0 {
		return "", usagef("--instance %s: DATA was served as instance %s, whose %d running servers would be left behind; stop them first (or serve it as %s)", flagged, recorded, len(running), recorded)
	}
	log.Warn("instance renamed", "from", recorded, "to", flagged)
	return flagged, store.SetMeta(ctx, metaInstance, flagged)
}

// instanceIDBase claims the instance's window of host ids for as long as
// serve runs and returns its first id: chosen at the first serve and kept
// in DATA, so that its servers keep their host ids.
func instanceIDBase(ctx context.Context, store *storage.Store, name string) (uint32, io.Closer, error) {
	var claim io.Closer
	var chosen uint32
	v, err := store.Meta(ctx, metaIDBase, func() (string, error) {
		var err error
		chosen, claim, err = containerd.ClaimIDBase(name, 0)
		return strconv.FormatUint(uint64(chosen), 10), err
	})
	if err != nil {
		if claim != nil {
			claim.Close()
		}
		return 0, nil, err
	}
	if claim != nil {
		return chosen, claim, nil
	}
	base, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return 0, nil, fmt.Errorf("recorded host id base %q: %w", v, err)
	}
	return containerd.ClaimIDBase(name, uint32(base))
}

// Keys of DATA's meta settings.
const (
	metaInstance = "instance"
	metaIDBase   = "idbase"
)

// notifyReady tells systemd (Type=notify) that Hearth is serving.
func notifyReady(log *slog.Logger) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return
	}
	if path[0] == '@' {
		path = "\x00" + path[1:] // abstract socket
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		log.Warn("sd_notify", "err", err)
		return
	}
	defer c.Close()
	if _, err := c.Write([]byte("READY=1")); err != nil {
		log.Warn("sd_notify", "err", err)
	}
}

// hostAddress is where per-server VNC ports open when --vnc-listen is not
// given: the IPv4 address of the interface that holds the default route (the
// one a VNC client elsewhere on the network reaches), else loopback.
func hostAddress() string {
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return "127.0.0.1"
	}
	for _, r := range routes {
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue
			}
		}
		if r.Src != nil {
			return r.Src.String()
		}
		link, err := netlink.LinkByIndex(r.LinkIndex)
		if err != nil {
			continue
		}
		if addrs, err := netlink.AddrList(link, netlink.FAMILY_V4); err == nil && len(addrs) > 0 {
			return addrs[0].IP.String()
		}
	}
	return "127.0.0.1"
}
