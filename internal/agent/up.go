package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent/command"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent/cryptsetup"
)

// Up brings every volume up: a blank disk gets a new KMS-wrapped key, LUKS2
// and a filesystem; a volume of ours is unlocked through KMS; anything else
// is refused unless wipe_foreign. It returns the joined failures of all
// volumes (a volume that failed has nothing mounted).
func (a *Agent) Up(ctx context.Context) error {
	unlock, err := a.lock()
	if err != nil {
		return err
	}
	defer unlock()
	a.keys.reset()
	if err := a.cs.CheckVersion(ctx); err != nil {
		return err
	}
	disks, err := a.layoutDisks()
	if err != nil {
		return err
	}
	if a.cfg.Layout == LayoutRAID0 && len(disks) > 1 {
		return a.upArray(ctx, disks)
	}
	var errs []error
	var probes []*Probe
	for _, d := range disks {
		start := time.Now()
		p, err := a.probe(ctx, d)
		if err != nil {
			v := &volume{device: d}
			a.logVolume(ctx, "up", v, OutcomeFailed, start, err)
			errs = append(errs, volumeErr(v, err))
			continue
		}
		probes = append(probes, p)
	}
	for _, v := range a.plan(probes) {
		start := time.Now()
		outcome, err := a.upVolume(ctx, v)
		a.logVolume(ctx, "up", v, outcome, start, err)
		errs = append(errs, volumeErr(v, err))
	}
	return errors.Join(errs...)
}

// upVolume decides by what the device holds.
func (a *Agent) upVolume(ctx context.Context, v *volume) (string, error) {
	p := v.probe
	if p.MountedAt != "" {
		return OutcomeRefused, fmt.Errorf("the raw disk is mounted at %s (cloud-init mounts the first ephemeral disk unless told not to; the amicrypt-instance-store provisioner installs a drop-in that stops it): unmount it and run the agent again", p.MountedAt)
	}
	switch p.State {
	case StateBlank:
		return a.format(ctx, v, nil)
	case StateOurs:
		return a.reopen(ctx, v)
	}
	if !a.cfg.WipeForeign {
		return OutcomeRefused, fmt.Errorf("it holds %s (%s): the agent formats only blank disks and reopens its own volumes; set wipe_foreign to true to reformat it (its content is lost)", p.Detail, p.State)
	}
	return a.format(ctx, v, func(ctx context.Context) error { return a.wipe(ctx, v.device) })
}

func (a *Agent) wipe(ctx context.Context, devs ...string) error {
	for _, d := range devs {
		if _, err := a.run.Run(ctx, command.Cmd{Name: "wipefs", Args: []string{"--all", d}}); err != nil {
			return fmt.Errorf("wiping the signatures of %s: %w", d, err)
		}
	}
	return nil
}

// format makes a new volume. KMS comes first: nothing is written to any
// disk before GenerateDataKey succeeded. prepare (wiping foreign data,
// making the array) runs after it, before luksFormat.
func (a *Agent) format(ctx context.Context, v *volume, prepare func(context.Context) error) (string, error) {
	if m, err := a.mapping(ctx, v.name); err != nil {
		return OutcomeFailed, err
	} else if m.Active {
		return OutcomeRefused, fmt.Errorf("/dev/mapper/%s is already open on %s; close it (cryptsetup close %s) or choose another name", v.name, m.Device, v.name)
	}
	luksUUID := uuid.NewString()
	ec := a.encryptionContext(luksUUID)
	var dk *dataKey
	err := v.took.time(&v.took.kms, func() (err error) {
		dk, err = a.keys.generate(ctx, a.cfg.KMSKeyID, ec)
		return err
	})
	if err != nil {
		return OutcomeFailed, fmt.Errorf("no new key, so nothing was written to the disk: %w", err)
	}
	defer clear(dk.plaintext)
	if prepare != nil {
		if err := prepare(ctx); err != nil {
			return OutcomeFailed, err
		}
	}
	tok := newToken(0, dk.keyARN, dk.blob, ec, v.name)
	err = v.took.time(&v.took.format, func() error {
		if err := a.cs.Format(ctx, v.device, cryptsetup.FormatOptions{UUID: luksUUID, Label: v.name, Subsystem: Subsystem}, dk.plaintext); err != nil {
			return err
		}
		if err := a.cs.ImportToken(ctx, v.device, 0, tok.Marshal(), false); err != nil {
			return fmt.Errorf("%w; the volume's key is lost, so the disk holds nothing usable: run the agent again with wipe_foreign to reformat it", err)
		}
		return a.checkToken(ctx, v.device, 0, tok, dk.plaintext)
	})
	if err != nil {
		return OutcomeFailed, err
	}
	v.probe.UUID, v.probe.Token = luksUUID, tok // for the log line; State stays what was found
	if err := a.openAndMount(ctx, v, dk.plaintext, true); err != nil {
		return OutcomeFailed, err
	}
	return OutcomeFormatted, nil
}

// checkToken reads token id back, compares it with what was written, and
// checks that the passphrase opens the keyslot it names.
func (a *Agent) checkToken(ctx context.Context, dev string, id int, want *Token, passphrase []byte) error {
	raw, err := a.cs.ExportToken(ctx, dev, id)
	if err != nil {
		return err
	}
	got, err := ParseToken(raw)
	if err != nil {
		return fmt.Errorf("reading back token %d of %s: %w", id, dev, err)
	}
	if !got.Equal(want) {
		return fmt.Errorf("token %d of %s: %w", id, dev, errTokenMismatch)
	}
	if err := a.cs.TestPassphrase(ctx, dev, want.Keyslot(), passphrase); err != nil {
		return fmt.Errorf("the key in token %d does not open keyslot %d of %s: %w", id, want.Keyslot(), dev, err)
	}
	return nil
}

// reopen unlocks a volume of ours with the key KMS unwraps for this
// instance.
func (a *Agent) reopen(ctx context.Context, v *volume) (string, error) {
	p := v.probe
	if p.Token == nil {
		return OutcomeRefused, fmt.Errorf("it is an amicrypt volume whose amicrypt-kms token is unusable (%w); it is left as it is", p.TokenErr)
	}
	if m, err := a.mapping(ctx, v.name); err != nil {
		return OutcomeFailed, err
	} else if m.Active {
		if !sameFile(m.Device, v.device) {
			return OutcomeRefused, fmt.Errorf("/dev/mapper/%s is already open on %s, not on this disk; close it (cryptsetup close %s)", v.name, m.Device, v.name)
		}
		if err := a.filesystemAndMount(ctx, v, false); err != nil {
			return OutcomeFailed, err
		}
		return OutcomeAlreadyOpen, nil
	}
	var passphrase []byte
	err := v.took.time(&v.took.kms, func() (err error) {
		passphrase, err = a.unwrap(ctx, p)
		return err
	})
	if err != nil {
		if IsCode(err, "InvalidCiphertextException") {
			return OutcomeRefused, err
		}
		return OutcomeFailed, err
	}
	defer clear(passphrase)
	if err := a.openAndMount(ctx, v, passphrase, false); err != nil {
		return OutcomeFailed, err
	}
	return OutcomeReopened, nil
}

// unwrap asks KMS for the volume's key with the context rebuilt for this
// instance. A disk wrapped for another instance fails here, and the error
// says whose it is.
func (a *Agent) unwrap(ctx context.Context, p *Probe) ([]byte, error) {
	ec := a.encryptionContext(p.UUID)
	pt, err := a.keys.decrypt(ctx, p.Token.KMSKeyARN, p.Token.Blob(), ec)
	var kerr *KMSError
	if errors.As(err, &kerr) && kerr.Code == "InvalidCiphertextException" {
		kerr.Detail = a.diagnoseContext(p, ec)
	}
	return pt, err
}

// diagnoseContext says why the rebuilt context does not match the one the
// key was wrapped with, from what the token records.
func (a *Agent) diagnoseContext(p *Probe, ec map[string]string) string {
	recorded := p.Token.EncryptionContext
	if other := recorded[ContextInstanceARN]; other != ec[ContextInstanceARN] {
		return fmt.Sprintf("the disk belongs to another instance: its key was wrapped for %s (amicrypt:instance-arn in its token), and this is %s; the disk was left as it is",
			other, ec[ContextInstanceARN])
	}
	if rec := recorded[ContextLUKSUUID]; rec != ec[ContextLUKSUUID] {
		return fmt.Sprintf("the token was made for LUKS volume %s but sits in the header of %s: it was copied from another volume", rec, ec[ContextLUKSUUID])
	}
	var diffs []string
	for k, v := range recorded {
		if !strings.HasPrefix(k, ReservedContextPrefix) && ec[k] != v {
			diffs = append(diffs, fmt.Sprintf("%s=%q (config: %q)", k, v, ec[k]))
		}
	}
	for k, v := range ec {
		if _, ok := recorded[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s=%q only in the config", k, v))
		}
	}
	if len(diffs) > 0 {
		return "the config's encryption_context differs from the one the disk's key was wrapped with: " + strings.Join(diffs, ", ") + "; restore it"
	}
	return "the token's ciphertext does not match its recorded context: it was altered"
}

// openAndMount opens the volume, makes its filesystem when it is fresh (just
// formatted) or has none yet (a first boot interrupted before mkfs), and
// mounts it.
func (a *Agent) openAndMount(ctx context.Context, v *volume, passphrase []byte, fresh bool) error {
	if err := v.took.time(&v.took.open, func() error { return a.cs.Open(ctx, v.device, v.name, passphrase) }); err != nil {
		if !a.dmAvailable() {
			return fmt.Errorf("%w: this kernel has no device-mapper (no %s/control; dm-crypt is needed to open LUKS volumes). "+
				"The disk stays formatted with its wrapped key in its LUKS2 header; a boot with dm-crypt opens it. Nothing is mounted", err, a.paths.Mapper)
		}
		return err
	}
	return a.filesystemAndMount(ctx, v, fresh)
}

// filesystemAndMount makes the filesystem of a fresh volume, or of one of
// ours that has none (an earlier first boot stopped between luksFormat and
// mkfs), and mounts what the volume holds. A volume over a blank disk does
// not read as zeros through dm-crypt, but as the decryption of zeros, which
// looks random: only a known signature tells a filesystem.
func (a *Agent) filesystemAndMount(ctx context.Context, v *volume, fresh bool) error {
	mapped := v.mapped(a.paths)
	fstype := ""
	if !fresh {
		var err error
		if fstype, err = filesystemOn(mapped); err != nil {
			return err
		}
	}
	switch fstype {
	case "":
		if err := v.took.time(&v.took.mkfs, func() error { return a.mkfs(ctx, mapped) }); err != nil {
			return err
		}
		fstype = a.cfg.Filesystem
	case "ext4", "xfs":
	default:
		return fmt.Errorf("the opened volume %s holds %s, not an ext4 or xfs filesystem; it was left as it is and nothing is mounted", mapped, fstype)
	}
	return v.took.time(&v.took.mount, func() error { return a.mount(ctx, mapped, v.mountPoint, fstype) })
}

func (a *Agent) mkfs(ctx context.Context, dev string) error {
	var cmd command.Cmd
	switch a.cfg.Filesystem {
	case "xfs":
		cmd = command.Cmd{Name: "mkfs.xfs", Args: []string{"-q", "-f", dev}}
	default:
		cmd = command.Cmd{Name: "mkfs.ext4", Args: []string{"-q", "-F", dev}}
	}
	if _, err := a.run.Run(ctx, cmd); err != nil {
		return fmt.Errorf("making the %s filesystem on %s: %w", a.cfg.Filesystem, dev, err)
	}
	return nil
}

func (a *Agent) mount(ctx context.Context, mapped, dir, fstype string) error {
	mounts, err := readMounts(a.paths.Mounts)
	if err != nil {
		return err
	}
	if src := mountOf(mounts, dir); src != "" {
		if sameFile(src, mapped) {
			return nil
		}
		return fmt.Errorf("%s already has %s mounted on it; unmount it or choose another mount_point", dir, src)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("making the mount point: %w", err)
	}
	return a.mounter.Mount(ctx, mapped, dir, fstype)
}

// upArray brings up layout raid0: the md array is made (or assembled) from
// the disks, and the array holds one LUKS volume.
func (a *Agent) upArray(ctx context.Context, disks []string) error {
	start := time.Now()
	v := &volume{name: a.cfg.Name, device: a.arrayDevice(), members: disks, mountPoint: a.cfg.MountPoint}
	outcome, err := a.upArrayVolume(ctx, v)
	a.logVolume(ctx, "up", v, outcome, start, err)
	return volumeErr(v, err)
}

func (a *Agent) upArrayVolume(ctx context.Context, v *volume) (string, error) {
	if dev := a.activeArray(ctx, v.members); dev != "" {
		v.device = dev
	} else {
		outcome, done, err := a.assembleOrCreate(ctx, v)
		if done || err != nil {
			return outcome, err
		}
	}
	p, err := a.probe(ctx, v.device)
	if err != nil {
		return OutcomeFailed, err
	}
	v.probe = p
	return a.upVolume(ctx, v)
}

// assembleOrCreate looks at the members: all blank makes a new array and
// volume (done), all members of one raid0 array of ours assembles it, and
// anything else is refused unless wipe_foreign.
func (a *Agent) assembleOrCreate(ctx context.Context, v *volume) (outcome string, done bool, err error) {
	var blank, same int
	var arrayUUID string
	var found []string
	for _, d := range v.members {
		p, err := a.probe(ctx, d)
		if err != nil {
			return OutcomeFailed, true, err
		}
		if p.MountedAt != "" {
			return OutcomeRefused, true, fmt.Errorf("member %s is mounted at %s; unmount it and run the agent again", d, p.MountedAt)
		}
		switch {
		case p.State == StateBlank:
			blank++
			found = append(found, d+": blank")
		case p.MDMember:
			info, ok, err := a.md.examine(ctx, d)
			if err != nil {
				return OutcomeFailed, true, err
			}
			if ok && info.Level == "raid0" && info.Devices == len(v.members) && (arrayUUID == "" || arrayUUID == info.UUID) {
				arrayUUID = info.UUID
				same++
			}
			found = append(found, fmt.Sprintf("%s: md member (level %s, %d devices, array %s)", d, info.Level, info.Devices, info.UUID))
		default:
			found = append(found, fmt.Sprintf("%s: %s", d, p.Detail))
		}
	}
	v.probe = &Probe{Device: v.device, State: StateBlank}
	switch {
	case blank == len(v.members):
		outcome, err := a.format(ctx, v, func(ctx context.Context) error {
			return a.md.create(ctx, v.device, a.cfg.Name, v.members)
		})
		return outcome, true, err
	case same == len(v.members):
		return "", false, a.md.assemble(ctx, v.device, v.members)
	case !a.cfg.WipeForeign:
		v.probe.State = StateForeign
		return OutcomeRefused, true, fmt.Errorf("the disks are neither all blank nor one raid0 array of %d disks (%s): set wipe_foreign to true to reformat them (their content is lost)",
			len(v.members), strings.Join(found, "; "))
	}
	outcome, err = a.format(ctx, v, func(ctx context.Context) error {
		if err := a.wipe(ctx, v.members...); err != nil {
			return err
		}
		return a.md.create(ctx, v.device, a.cfg.Name, v.members)
	})
	return outcome, true, err
}
