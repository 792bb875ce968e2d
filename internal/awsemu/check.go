package awsemu

import "github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/checker"

// The invariant checker's types, as the emulator's users name them.
type (
	CheckOptions = checker.Options
	CheckReport  = checker.Report
	Finding      = checker.Finding
)

// Check names, as they appear in Finding.Check and CheckOptions.Ignore.
const (
	CheckUnencryptedAMI        = checker.UnencryptedAMI
	CheckLeftoverInstance      = checker.LeftoverInstance
	CheckLeftoverKeyPair       = checker.LeftoverKeyPair
	CheckLeftoverSecurityGroup = checker.LeftoverSecurityGroup
	CheckLeftoverLaunchTmpl    = checker.LeftoverLaunchTmpl
	CheckLeftoverFleet         = checker.LeftoverFleet
	CheckOpenSpotRequest       = checker.OpenSpotRequest
	CheckOrphanSnapshot        = checker.OrphanSnapshot
	CheckLeftoverGrant         = checker.LeftoverGrant
	CheckLeftoverLaunchPerm    = checker.LeftoverLaunchPerm
	CheckLeftoverVolumePerm    = checker.LeftoverVolumePerm
	CheckForeignKeyCopy        = checker.ForeignKeyCopy
	CheckInstanceContext       = checker.InstanceContext
)

// CheckMark returns the current audit position, a baseline for
// CheckOptions.SinceSeq.
func (e *Emulator) CheckMark() int { return e.audit.Len() }

// Check runs every invariant over the state and the audit.
func (e *Emulator) Check(opts CheckOptions) CheckReport {
	return checker.Check(e.checkSource(), opts)
}

func (e *Emulator) checkSource() checker.Source {
	return checker.Source{Audit: e.audit, Inventory: e.ec2.Inventory, Grants: e.kms.Grants, Now: e.clock.Now}
}
