package fault

import "errors"

// ErrInjected is what a failure point in error mode returns.
var ErrInjected = errors.New("injected failure")

// Env is the environment variable that arms a point in a -tags faults build.
const Env = "DINDSTORE_FAULT"

// Names lists every failure point, for tests that visit them all.
var Names = []string{
	"after-truncate", "after-mkfs", "after-record",
	"after-attach", "after-mount", "while-tree-runs", "during-grow", "during-rm", "during-commit",
}

// WarmNames lists the failure points of warm, which need images on a host
// daemon to reach (see the package doc).
var WarmNames = []string{"before-warm-copy", "during-warm-copy", "after-warm-copy"}

// PullNames lists the failure points of pull, which need a registry to
// reach (see the package doc).
var PullNames = []string{"during-pull", "before-pull-switch", "during-pull-switch"}
