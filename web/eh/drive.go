package eh

import (
	"fmt"
	"strings"
)

// AllUsers is the readers entry that lets every user read a drive.
const AllUsers = "ffffffff-ffff-ffff-ffff-ffffffffffff"

func driveRule(key string) (rule, error) {
	switch key {
	case "name":
		return rule{check: line(MaxNameLength), nonEmpty: true}, nil
	case "size":
		return rule{check: checkSize}, nil
	case "claim:type":
		return rule{check: oneOf("exclusive", "shared")}, nil
	case "readers":
		return rule{check: words(checkUUID)}, nil
	case "tags", "use", "licenses":
		return rule{check: words(nil)}, nil
	case "avoid":
		return rule{check: words(checkUUID), createOnly: true}, nil
	case "encryption:cipher":
		return rule{check: checkCipher, createOnly: true}, nil
	case "tier":
		return rule{check: oneOf("disk", "ssd")}, nil
	case "driveType": // CS-1 clone bodies: the tier under another name
		return rule{check: checkDriveType, canonical: "tier"}, nil
	case "media":
		return rule{check: checkMedia}, nil
	// CS-1 metadata, kept as given.
	case "type":
		return rule{check: oneOf("disk", "cdrom", "shared")}, nil
	case "os":
		return rule{check: oneOf("linux", "windows", "other")}, nil
	case "bits":
		return rule{check: oneOf("32", "64")}, nil
	case "free":
		return rule{check: oneOf("true", "false", "none")}, nil
	case "favourite", "autoexpanding":
		return rule{check: checkBool}, nil
	case "url":
		return rule{check: line(MaxTextLength)}, nil
	case "description", "install_notes":
		return rule{check: text(MaxTextLength)}, nil
	case "drive_type":
		return rule{check: checkCommaWords}, nil
	}
	if userKey(key) {
		return rule{check: text(MaxTextLength)}, nil
	}
	return rule{}, errUnknownKey
}

// checkCipher refuses every cipher but none: Hearth keeps drives as plain
// image files, and a key that promised encryption it does not give would
// be worse than a refusal.
func checkCipher(v string) (string, error) {
	if v != "none" {
		return "", fmt.Errorf("%s is not supported: Hearth does not encrypt drives at rest (give none, or encrypt inside the guest)", quote(v))
	}
	return v, nil
}

func checkDriveType(v string) (string, error) {
	if strings.EqualFold(v, "hdd") {
		return "disk", nil
	}
	return oneOf("ssd")(v)
}

func checkCommaWords(v string) (string, error) {
	var items []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			items = append(items, f)
		}
	}
	return strings.Join(items, ","), nil
}

func driveReadOnly(key string) bool {
	switch key {
	case "drive", "imaging", "read:bytes", "read:requests", "write:bytes", "write:requests",
		"format", "rawsize", "host", "volume", "email", "encryption:key":
		return true
	}
	return commonReadOnly(key)
}

var drives = &schema{
	kind:     "drive",
	rule:     driveRule,
	readOnly: driveReadOnly,
	required: []string{"size"},
	defaults: Props{"tier": "disk", "encryption:cipher": "none"},
}

// NewDrive validates the body of /drives/create and returns the properties to
// store: size in bytes (suffixes resolved), lower-case UUIDs, defaults tier
// disk and encryption:cipher none (Hearth keeps drives as plain image files;
// any other cipher is refused, never recorded as if it held). size is
// required; name may be missing (one EH client created drives without it)
// but not given empty.
func NewDrive(in Props) (Props, error) {
	return drives.create(in)
}

// UpdateDrive validates a /drives/DRIVE/set body against the stored
// properties current and returns the properties to store and the keys that
// changed ("" = removed). A changed size is a resize; avoid and
// encryption:cipher can only be chosen at creation.
func UpdateDrive(current, in Props) (next, changed Props, err error) {
	return drives.update(current, in, false)
}
