package containerd

import "os/exec"

var execLookPath = exec.LookPath
