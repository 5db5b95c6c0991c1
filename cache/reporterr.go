package cache

import "encoding/json"

// Reports (Finding, Entry, Removal) keep the error itself, for callers that
// test it with errors.Is; it becomes a string ("error") only when marshalled.

// errText is an error's message for a report ("" for none).
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// MarshalJSON writes the finding with its error as a string.
func (f Finding) MarshalJSON() ([]byte, error) {
	type plain Finding
	return json.Marshal(struct {
		plain
		Error string `json:"error,omitempty"`
	}{plain(f), errText(f.Err)})
}

// MarshalJSON writes the entry with its error as a string.
func (e Entry) MarshalJSON() ([]byte, error) {
	type plain Entry
	return json.Marshal(struct {
		plain
		Error string `json:"error,omitempty"`
	}{plain(e), errText(e.Err)})
}

// MarshalJSON writes the removal with its error as a string.
func (rm Removal) MarshalJSON() ([]byte, error) {
	type plain Removal
	return json.Marshal(struct {
		plain
		Error string `json:"error,omitempty"`
	}{plain(rm), errText(rm.Err)})
}
