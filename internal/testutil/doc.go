// Package testutil holds the helpers dindstore's tests share: gates that
// skip, with the reason, tests that need root or system tools.
package testutil
