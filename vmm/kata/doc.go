// Package kata is Hearth's side of Kata Containers: what Hearth asks of the
// Kata shim (containerd-shim-kata-v2, Kata's Go runtime) and how it makes
// sure the installed Kata will grant it.
//
// Hearth sizes each guest's VM through hypervisor annotations in the OCI
// spec. Kata refuses every hypervisor annotation its configuration does not
// list in enable_annotations ("annotation … is not enabled"), and the
// release's default list holds neither default_vcpus nor default_memory, so
// Hearth owns a small piece of the configuration:
//
//   - Annotations is the one list of annotations Hearth sends; Size turns a
//     guest's smp and mem into them under Kata's own limits.
//   - DropIn is the config.d drop-in that enables exactly that list; the
//     appliance installs it (deploy/kata-hearth.toml) next to Kata's
//     configuration.
//   - Check reads the configuration the shim would load, in Kata's lookup
//     order and with its drop-ins, and says precisely what is missing;
//     vmm's Kata probe calls it, so `--runtime auto` reports it.
//   - ContainerdCRIRuntime is the runtime table containerd's CRI needs to
//     pass the same annotations on from Kubernetes pods.
//
// Why a drop-in and not a configuration handed to the shim (runtime options'
// ConfigPath, KATA_CONF_FILE or the io.katacontainers.config_path
// annotation): those name a whole configuration file, so Hearth would have to
// copy Kata's (hypervisor, kernel and image paths of the installed release)
// and keep the copy in step with every Kata upgrade. A drop-in changes one
// key, survives upgrades of the release tarball, and is what Kata's own
// installer uses (kata-deploy).
//
// The package imports nothing of Hearth, so vmm and the appliance tests
// (deploy) share it.
package kata
