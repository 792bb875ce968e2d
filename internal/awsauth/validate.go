package awsauth

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

var externalIDPattern = regexp.MustCompile(`^[\w+=,.@:/-]+$`)

// ValidateExternalID checks an external ID against AWS's rule for
// sts:AssumeRole (docs/aws-behaviour.md 3.15): 2 to 1224 characters of
// letters, digits and +=,.@:/-_. An empty ID is no ID, and passes.
func ValidateExternalID(field, id string) error {
	n := len(id)
	if id == "" || n >= 2 && n <= 1224 && externalIDPattern.MatchString(id) {
		return nil
	}
	if n < 2 || n > 1224 {
		return fmt.Errorf("%s: %s is %d characters; AWS takes an external ID of 2 to 1224 characters: use the one the role's trust policy names (sts:ExternalId)", field, quoteShort(id), n)
	}
	var bad []string
	for _, r := range id {
		if !externalIDPattern.MatchString("ab"+string(r)) && !slices.Contains(bad, string(r)) {
			bad = append(bad, string(r))
		}
	}
	return fmt.Errorf("%s: %s contains %q, which AWS refuses in an external ID (allowed: letters, digits and +=,.@:/-_); use the one the role's trust policy names (sts:ExternalId)", field, quoteShort(id), strings.Join(bad, ""))
}

// quoteShort quotes a value, cut to its first 40 characters when longer,
// so that an error about a long value stays readable.
func quoteShort(s string) string {
	if r := []rune(s); len(r) > 40 {
		return strconv.Quote(string(r[:37])) + "…"
	}
	return strconv.Quote(s)
}

// ZeroSettings refuses the access configuration's counts written as 0
// (max_retries, aws_polling, assume_role.duration_seconds): unset, each
// takes its default, and 0 written out would silently mean that default
// too, not "none" or "no limit". raws are the configurations as Packer
// passes them to Prepare.
func ZeroSettings(raws []interface{}) []error {
	return ExplicitZeros(raws,
		ZeroField{[]string{"max_retries"}, "0 would mean the default (10 retries), not \"no retries\"; remove the field for the default, or give a positive count"},
		ZeroField{[]string{"aws_polling", "max_attempts"}, "0 polls can't wait for anything; remove the field for the default (as many polls as fit in six hours) or give a positive count"},
		ZeroField{[]string{"aws_polling", "delay_seconds"}, "0 would mean the default (15 seconds), not \"no delay\"; remove the field or give a positive number of seconds"},
		ZeroField{[]string{"assume_role", "duration_seconds"}, "0 would mean the default (900), not an unlimited session; remove the field or give 900 to 43200"},
	)
}

// ZeroField is a count for ExplicitZeros: its path in the configuration
// and why 0 is refused, with the fix.
type ZeroField struct {
	Path []string
	Why  string
}

// ExplicitZeros returns an error for each field written as 0 in any of
// raws.
func ExplicitZeros(raws []interface{}, fields ...ZeroField) []error {
	var errs []error
	for _, f := range fields {
		for _, raw := range raws {
			if v, ok := lookup(raw, f.Path); ok && isZero(v) {
				errs = append(errs, fmt.Errorf("%s: 0 is not a setting: %s", strings.Join(f.Path, "."), f.Why))
				break
			}
		}
	}
	return errs
}

// lookup finds the value at path in a raw configuration as Packer passes
// it: maps (JSON templates, HCL2 objects) and lists of maps (HCL2 blocks).
// Unset attributes of an HCL2 template are present with a nil value.
func lookup(raw interface{}, path []string) (interface{}, bool) {
	if len(path) == 0 {
		return raw, raw != nil
	}
	switch m := raw.(type) {
	case map[string]interface{}:
		v, ok := m[path[0]]
		if !ok {
			return nil, false
		}
		return lookup(v, path[1:])
	case []interface{}:
		for _, e := range m {
			if v, ok := lookup(e, path); ok {
				return v, true
			}
		}
	case []map[string]interface{}:
		for _, e := range m {
			if v, ok := lookup(e, path); ok {
				return v, true
			}
		}
	}
	return nil, false
}

// isZero reports whether a raw value is the number 0, however it was
// decoded.
func isZero(v interface{}) bool {
	switch n := v.(type) {
	case int:
		return n == 0
	case int64:
		return n == 0
	case float64:
		return n == 0
	case json.Number:
		f, err := n.Float64()
		return err == nil && f == 0
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(n), 64)
		return err == nil && f == 0
	}
	return false
}
