package dash

import (
	"slices"
	"strings"

	"hearth/web/eh"
)

// A problem is one line of a form's error summary: what is wrong, and the
// id of the input it links to ("" for the form as a whole).
type problem struct{ Field, Text string }

// A formField names one field of a form for its error summary: the key its
// error is filed under (formErrors), the id of its input and its label.
type formField struct{ Key, ID, Label string }

// problems lists a refused form's errors for its summary: the form's own
// first, then each field's in the order the form shows them ("Label: what
// is wrong", linked to the input), then any left (unlinked).
func problems(errs formErrors, fields []formField) []problem {
	var out []problem
	if msg := errs[""]; msg != "" {
		out = append(out, problem{Text: msg})
	}
	seen := map[string]bool{"": true}
	for _, f := range fields {
		seen[f.Key] = true
		if msg := errs[f.Key]; msg != "" {
			out = append(out, problem{Field: f.ID, Text: f.Label + ": " + msg})
		}
	}
	keys := make([]string, 0, len(errs))
	for k := range errs {
		if !seen[k] && errs[k] != "" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		out = append(out, problem{Text: errs[k]})
	}
	return out
}

// problemTitle heads the summary.
func problemTitle(n int) string {
	if n == 1 {
		return "There is a problem"
	}
	return "There are " + itoa(n) + " problems"
}

// fieldMessage is an operation's refusal as shown next to the field it
// names: the API's message without its "key KEY: " lead, which the
// field's label says instead ("key cpu: 99 is out of range 100–100000 MHz"
// → "99 is out of range 100–100000 MHz").
func fieldMessage(err error) string {
	e := eh.AsError(err)
	if rest, ok := strings.CutPrefix(e.Message, "key "+e.Key+": "); ok && e.Key != "" && rest != "" {
		return strings.ToUpper(rest[:1]) + rest[1:]
	}
	return e.Message
}

// The fields of each form, in the order it shows them, for its summary.
var (
	serverSummaryFields = []formField{
		{"name", "name", "Name"}, {"cpu", "cpu", "CPU (MHz)"}, {"smp", "smp", "vCPUs"}, {"mem", "mem", "Memory (MB)"},
		{"password", "password", "VNC password"}, {"tags", "tags", "Tags"}, {"boot", "bootdrive", "Boot drive"},
		{"nic0", "nic0", "Public network"}, {"vlan", "vlan", "VLAN"}, {"persistent", "persistent", "Persistent"},
		{"extra", "extra", "Other keys"},
	}
	createSummaryFields = []formField{
		{"name", "name", "Name"}, {"size", "size-custom", "Size"}, {"cpu", "cpu", "Custom CPU (MHz)"},
		{"mem", "mem", "Custom memory (MB)"}, {"source", "source", "Image"}, {"drivesize", "drivesize", "Drive size"},
		{"nic0", "nic0", "Public network"}, {"vlan", "vlan", "VLAN"}, {"password", "password", "VNC password"},
	}
	driveSummaryFields = []formField{{"name", "name", "Name"}, {"size", "size", "Size"}}
)

// limitFields are the account form's fields: one per limit row.
func limitFields(rows []limitRow) []formField {
	out := make([]formField, len(rows))
	for i, r := range rows {
		out[i] = formField{Key: r.Key, ID: r.Key, Label: "Limit of " + r.Label}
	}
	return out
}

// only is the errors of one field alone, for a page whose forms each show
// their own summary.
func (fe formErrors) only(key string) formErrors {
	if fe[key] == "" {
		return nil
	}
	return formErrors{key: fe[key]}
}

// forbiddenText is the page a logged-in user gets for what their account
// may not do ("only an admin manages users"): the refusal as a sentence,
// and where their own things are.
func forbiddenText(refusal string) string {
	if refusal == "" {
		return "Your account may not open this page."
	}
	return strings.ToUpper(refusal[:1]) + refusal[1:] + ". Your own usage and limits are on the Account page."
}
