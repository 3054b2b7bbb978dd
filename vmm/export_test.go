package vmm

import "os/exec"

var execLookPath = exec.LookPath
