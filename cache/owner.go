package cache

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Owner says who holds a cache's lock. It is written beside the lock file
// once the lock is taken, and removed before the lock is released; one left
// behind by a holder that died is told apart by Alive.
type Owner struct {
	// PID is the holder's process id.
	PID int `json:"pid"`
	// BootID is /proc/sys/kernel/random/boot_id when the lock was taken: a
	// pid from an earlier boot never names a live holder.
	BootID string `json:"boot_id"`
	// StartTime is the holder's start time in clock ticks since boot
	// (/proc/PID/stat field 22): a reused pid has another.
	StartTime uint64 `json:"start_time"`
	// Command is the holder's command line.
	Command []string `json:"command"`
	// Mode is how the cache is held: run, prepare (a hook's holder) or
	// launch (a holder waiting on a container).
	Mode string `json:"mode,omitempty"`
	// ContainerID and ContainerStarted name the container whose lease this
	// is, with its start time: a container gone, or restarted with another
	// start time, makes the lease stale.
	ContainerID      string    `json:"container_id,omitempty"`
	ContainerStarted time.Time `json:"container_started,omitempty"`
	// Group is the cgroup that holds the lease's processes (see proctree),
	// empty when the host has none for it.
	Group string `json:"group,omitempty"`
	// Acquired is when the lock was taken.
	Acquired time.Time `json:"acquired"`
}

// CommandLine joins the command for messages, cut to a readable length.
func (o *Owner) CommandLine() string {
	s := strings.Join(o.Command, " ")
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

// Alive reports whether the process named by the owner record is still the
// one that wrote it: same boot, same pid, same start time.
func (o *Owner) Alive() bool {
	if o.BootID != bootID() {
		return false
	}
	start, err := processStartTime(o.PID)
	return err == nil && start == o.StartTime
}

// CurrentOwner describes this process as a holder.
func CurrentOwner(pid int, command []string) (*Owner, error) {
	start, err := processStartTime(pid)
	if err != nil {
		return nil, err
	}
	return &Owner{PID: pid, BootID: bootID(), StartTime: start, Command: command, Acquired: time.Now().UTC()}, nil
}

// parseOwner reads an owner record, refusing one that does not make sense.
func parseOwner(b []byte) (*Owner, error) {
	var o Owner
	if err := json.Unmarshal(b, &o); err != nil {
		return nil, fmt.Errorf("%w: owner record: %w", ErrCorruptRecord, err)
	}
	if o.PID <= 0 {
		return nil, fmt.Errorf("%w: owner record: pid %d", ErrCorruptRecord, o.PID)
	}
	return &o, nil
}
