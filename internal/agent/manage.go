package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent/cryptsetup"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent/luks2"
)

// volumes finds the volumes of the layout, probed, without changing
// anything (a raid0 array must be assembled already). only, when not empty,
// keeps the volume on that device (a disk, a member, or the array).
func (a *Agent) volumes(ctx context.Context, only string) ([]*volume, error) {
	disks, err := a.layoutDisks()
	if err != nil {
		return nil, err
	}
	var vols []*volume
	if a.cfg.Layout == LayoutRAID0 && len(disks) > 1 {
		v := &volume{name: a.cfg.Name, device: a.activeArray(ctx, disks), members: disks, mountPoint: a.cfg.MountPoint}
		if v.device == "" {
			return nil, fmt.Errorf("the raid0 array %s over %v is not assembled; run amicrypt-agent up first", a.arrayDevice(), disks)
		}
		if v.probe, err = a.probe(ctx, v.device); err != nil {
			return nil, err
		}
		vols = []*volume{v}
	} else {
		var probes []*Probe
		for _, d := range disks {
			p, err := a.probe(ctx, d)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", d, err)
			}
			probes = append(probes, p)
		}
		vols = a.plan(probes)
	}
	if only == "" {
		return vols, nil
	}
	for _, v := range vols {
		if sameFile(v.device, only) || slices.ContainsFunc(v.members, func(m string) bool { return sameFile(m, only) }) {
			return []*volume{v}, nil
		}
	}
	return nil, fmt.Errorf("%s is not one of the agent's disks (%v)", only, disks)
}

// forEachOurs runs fn on every volume of ours and logs one line each; a
// volume that is not ours is an error.
func (a *Agent) forEachOurs(ctx context.Context, action, only string, fn func(context.Context, *volume) (string, error)) error {
	a.keys.reset()
	vols, err := a.volumes(ctx, only)
	if err != nil {
		return err
	}
	var errs []error
	for _, v := range vols {
		start := time.Now()
		var outcome string
		switch {
		case v.probe.State != StateOurs:
			outcome, err = OutcomeRefused, fmt.Errorf("it is %s, not an amicrypt volume: nothing to %s", describeState(v.probe), action)
		case v.probe.Token == nil:
			outcome, err = OutcomeFailed, fmt.Errorf("its amicrypt-kms token is unusable: %w", v.probe.TokenErr)
		default:
			outcome, err = fn(ctx, v)
		}
		a.logVolume(ctx, action, v, outcome, start, err)
		errs = append(errs, volumeErr(v, err))
	}
	return errors.Join(errs...)
}

func describeState(p *Probe) string {
	if p.Detail != "" {
		return string(p.State) + ": " + p.Detail
	}
	return string(p.State)
}

// Verify unwraps each volume's key through KMS and checks it against the
// LUKS2 header (cryptsetup open --test-passphrase), without opening anything.
func (a *Agent) Verify(ctx context.Context, only string) error {
	if err := a.cs.CheckVersion(ctx); err != nil {
		return err
	}
	return a.forEachOurs(ctx, "verify", only, func(ctx context.Context, v *volume) (string, error) {
		pass, err := a.unwrap(ctx, v.probe)
		if err != nil {
			return OutcomeFailed, err
		}
		defer clear(pass)
		if err := a.cs.TestPassphrase(ctx, v.device, v.probe.Token.Keyslot(), pass); err != nil {
			return OutcomeFailed, fmt.Errorf("the key KMS unwrapped does not open keyslot %d: %w", v.probe.Token.Keyslot(), err)
		}
		return OutcomeVerified, nil
	})
}

// Rewrap moves each volume's wrapped key to another KMS key (kms:ReEncrypt,
// same context): the passphrase, and so the volume, are unchanged. The new
// blob is checked (unwrapped and tried on the header) before it replaces the
// token, so a failure leaves the volume as it was.
func (a *Agent) Rewrap(ctx context.Context, toKey, only string) error {
	if err := ValidateKeyRef(toKey); err != nil {
		return fmt.Errorf("--to: %w", err)
	}
	unlock, err := a.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if err := a.cs.CheckVersion(ctx); err != nil {
		return err
	}
	return a.forEachOurs(ctx, "rewrap", only, func(ctx context.Context, v *volume) (string, error) {
		old := v.probe.Token
		ec := a.encryptionContext(v.probe.UUID)
		blob, keyARN, err := a.keys.reencrypt(ctx, old.KMSKeyARN, old.Blob(), ec, toKey)
		if err != nil {
			var kerr *KMSError
			if errors.As(err, &kerr) && kerr.Code == "InvalidCiphertextException" {
				kerr.Detail = a.diagnoseContext(v.probe, ec)
			}
			return OutcomeFailed, err
		}
		tok := newToken(old.Keyslot(), keyARN, blob, ec, old.Volume)
		pass, err := a.keys.decrypt(ctx, keyARN, blob, ec)
		if err != nil {
			return OutcomeFailed, fmt.Errorf("the rewrapped key can't be unwrapped, so the token was left as it was: %w", err)
		}
		defer clear(pass)
		if err := a.cs.TestPassphrase(ctx, v.device, tok.Keyslot(), pass); err != nil {
			return OutcomeFailed, fmt.Errorf("the rewrapped key does not open keyslot %d, so the token was left as it was: %w", tok.Keyslot(), err)
		}
		if err := a.cs.ImportToken(ctx, v.device, v.probe.TokenID, tok.Marshal(), true); err != nil {
			return OutcomeFailed, err
		}
		if err := a.checkToken(ctx, v.device, v.probe.TokenID, tok, pass); err != nil {
			return OutcomeFailed, err
		}
		v.probe.Token = tok
		return OutcomeRewrapped, nil
	})
}

// Rotate changes each volume's passphrase: a new data key from KMS (same
// key, same context) goes into a new keyslot, the token is replaced, and the
// old keyslot is killed. The volume key, and so the data, are unchanged.
func (a *Agent) Rotate(ctx context.Context, only string) error {
	unlock, err := a.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if err := a.cs.CheckVersion(ctx); err != nil {
		return err
	}
	return a.forEachOurs(ctx, "rotate", only, a.rotate)
}

func (a *Agent) rotate(ctx context.Context, v *volume) (string, error) {
	old := v.probe.Token
	oldPass, err := a.unwrap(ctx, v.probe)
	if err != nil {
		return OutcomeFailed, err
	}
	defer clear(oldPass)
	ec := a.encryptionContext(v.probe.UUID)
	dk, err := a.keys.generate(ctx, old.KMSKeyARN, ec)
	if err != nil {
		return OutcomeFailed, fmt.Errorf("nothing was changed: %w", err)
	}
	defer clear(dk.plaintext)
	newSlot, err := freeKeyslot(v.probe.Metadata)
	if err != nil {
		return OutcomeFailed, err
	}
	if err := a.cs.AddKey(ctx, v.device, newSlot, oldPass, dk.plaintext); err != nil {
		return OutcomeFailed, fmt.Errorf("nothing was changed: %w", err)
	}
	tok := newToken(newSlot, dk.keyARN, dk.blob, ec, old.Volume)
	if err := a.cs.ImportToken(ctx, v.device, v.probe.TokenID, tok.Marshal(), true); err != nil {
		// Undo the keyslot nobody could open after this run.
		if kerr := a.cs.KillSlot(ctx, v.device, newSlot, oldPass); kerr != nil {
			return OutcomeFailed, fmt.Errorf("%w; keyslot %d was added and could not be removed (%w): remove it with cryptsetup luksKillSlot %s %d", err, newSlot, kerr, v.device, newSlot)
		}
		return OutcomeFailed, fmt.Errorf("%w; the new keyslot was removed, the volume is as it was", err)
	}
	if err := a.checkToken(ctx, v.device, v.probe.TokenID, tok, dk.plaintext); err != nil {
		return OutcomeFailed, err
	}
	if err := a.cs.KillSlot(ctx, v.device, old.Keyslot(), dk.plaintext); err != nil {
		return OutcomeFailed, fmt.Errorf("the token uses the new keyslot %d, but the old keyslot %d is still there: %w", newSlot, old.Keyslot(), err)
	}
	if err := a.cs.TestPassphrase(ctx, v.device, -1, oldPass); !errors.Is(err, cryptsetup.ErrWrongPassphrase) {
		return OutcomeFailed, fmt.Errorf("the old passphrase still opens the volume after keyslot %d was killed (test: %w)", old.Keyslot(), errOrNil(err))
	}
	v.probe.Token = tok
	return OutcomeRotated, nil
}

// freeKeyslot is the lowest keyslot number not in use.
func freeKeyslot(md *luks2.Metadata) (int, error) {
	for n := 0; n < 32; n++ {
		if _, used := md.Keyslots[strconv.Itoa(n)]; !used {
			return n, nil
		}
	}
	return 0, errors.New("all 32 keyslots are in use; kill one first (cryptsetup luksKillSlot)")
}

// errOrNil stands for a nil error in a message.
func errOrNil(err error) error {
	if err == nil {
		return errors.New("it opened")
	}
	return err
}
