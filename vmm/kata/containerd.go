package kata

import "fmt"

// RuntimeType is the containerd runtime name of Kata; containerd runs it as
// containerd-shim-kata-v2 from PATH.
const RuntimeType = "io.containerd.kata.v2"

// PodAnnotations is the pattern of pod annotations containerd's CRI passes
// on to Kata's sandbox (its pod_annotations setting; containerd drops every
// other pod annotation). Hearth itself writes Annotations straight into the
// spec; this is for Kubernetes pods on the same containerd.
const PodAnnotations = "io.katacontainers.*"

// ContainerdCRIRuntime is the table of a containerd configuration (version
// 2) that registers Kata as the CRI runtime handler (runtimeClassName)
// handler. It sets no options: the shim then loads its configuration from
// the default paths (ConfigPaths), where Hearth's drop-in applies.
func ContainerdCRIRuntime(handler string) string {
	return fmt.Sprintf("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.%s]\n  runtime_type = %q\n  pod_annotations = [%q]\n",
		handler, RuntimeType, PodAnnotations)
}
