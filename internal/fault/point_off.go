//go:build !faults

package fault

// Enabled tells whether this build has failure points.
const Enabled = false

// Point does nothing in a normal build.
func Point(string) error { return nil }
