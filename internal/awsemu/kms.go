package awsemu

import "github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/kms"

// The KMS side EC2 and the checker use, until EC2 moves to its package.

func (e *Emulator) handleKMS(c *Call) (any, *APIError) { return e.kms.Handle(c) }

func (e *Emulator) authorizeKeyUse(u KeyUse) (KeyInfo, *APIError) { return e.kms.AuthorizeKeyUse(u) }

func (e *Emulator) defaultEBSKey(account, region string) KeyInfo {
	return e.kms.DefaultEBSKey(account, region)
}

func (e *Emulator) keyInfoByARN(arn string) (KeyInfo, bool) { return e.kms.KeyInfoByARN(arn) }

func (e *Emulator) liveGrants() []GrantInfo { return e.kms.Grants() }

// GrantInfo is a live KMS grant.
type GrantInfo = kms.GrantInfo

// Grants lists the live KMS grants.
func (e *Emulator) Grants() []GrantInfo { return e.kms.Grants() }

// KMS is the emulator's KMS service, for tests that check what EC2 asks of
// it.
func (e *Emulator) KMS() *kms.Service { return e.kms }
