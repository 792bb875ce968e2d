package ebs

// Tags amicrypt-ebs writes on what a build makes, so a later run can find
// and remove what a dead build left behind (see step_reap.go).
const (
	// tagRun is the build run's identity.
	tagRun = "amicrypt:run"
	// tagTemplate identifies the template (build name, account, region).
	tagTemplate = "amicrypt:template"
	// tagLease is when the run's lease expires (RFC 3339); the run renews it
	// while alive. A resource whose lease expired belongs to a dead build.
	tagLease = "amicrypt:lease"
)

// reservedTagKey reports whether a tag key is one of the builder's own.
func reservedTagKey(k string) bool {
	return k == tagRun || k == tagTemplate || k == tagLease
}
