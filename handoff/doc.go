// Package handoff owns a lease's life: acquire the cache (with the
// exclusivity and admission checks of package cache), start the payload on
// the mount, pass signals on and escalate to killing the payload's whole
// tree after a stop timeout, wait for it, and release the cache on every
// path. A payload is anything a lease is handed to — a command (Command,
// for `dindstore run`), a dind container (Container, for `launch`; pinned,
// its mount given to a rootless daemon's user), a detached holder's wait
// (Hold, for `prepare`), a warm daemon (Daemon, for `warm`), the mount
// bound at a target path until unpublished (Publish, for a CSI
// NodePublishVolume), any work in this process (Func) — behind one small interface, so that each caller is
// its flags plus one call to Hand. CatchSignals gives a CLI command the
// one signal set; a long-running caller serving many leases leaves it off.
//
// The steps, in order:
//
//	acquire ─▶ start payload ─▶ supervise (signals, stop timeout, kill) ─▶ release
//	   │             │                                                       ▲
//	   └── error ────┴───────────────── release on every path ──────────────┘
//
// A release that fails never lets a payload's success through: Hand then
// returns the release's error (ErrDamaged, ErrInUse...) with status 0, and
// beside a failure's status it returns both.
package handoff
