package agent

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/agent/luks2"
)

// DiskStatus is what status reports about one disk or array.
type DiskStatus struct {
	Device            string            `json:"device"`
	Members           []string          `json:"members,omitempty"` // raid0: the array's disks
	State             State             `json:"state"`
	Detail            string            `json:"detail,omitempty"`
	Size              int64             `json:"size_bytes,omitempty"`
	LUKSUUID          string            `json:"luks_uuid,omitempty"`
	Keyslots          []string          `json:"keyslots,omitempty"`
	Volume            string            `json:"volume,omitempty"`
	KMSKeyARN         string            `json:"kms_key_arn,omitempty"`
	TokenKeyslot      string            `json:"token_keyslot,omitempty"`
	EncryptionContext map[string]string `json:"encryption_context,omitempty"`
	TokenError        string            `json:"token_error,omitempty"`
	Open              bool              `json:"open"`
	Mapper            string            `json:"mapper,omitempty"`
	Mounted           bool              `json:"mounted"`
	MountPoint        string            `json:"mount_point,omitempty"`
	Error             string            `json:"error,omitempty"`
}

// StatusReport is the output of status --json.
type StatusReport struct {
	Layout string       `json:"layout"`
	Disks  []DiskStatus `json:"disks"`
}

// Status reports each disk (and the raid0 array): what it holds, its
// token's key and context, and whether it is open and mounted. It needs no
// AWS access and changes nothing.
func (a *Agent) Status(ctx context.Context) (*StatusReport, error) {
	disks, err := a.disks()
	if err != nil {
		return nil, err
	}
	mounts, err := readMounts(a.paths.Mounts)
	if err != nil {
		return nil, err
	}
	rep := &StatusReport{Layout: a.cfg.Layout}
	var probes []*Probe
	for _, d := range disks {
		p, err := a.probe(ctx, d)
		if err != nil {
			rep.Disks = append(rep.Disks, DiskStatus{Device: d, Error: err.Error()})
			continue
		}
		probes = append(probes, p)
	}
	raid := a.cfg.Layout == LayoutRAID0 && len(disks) > 1
	for _, v := range a.plan(probes) {
		rep.Disks = append(rep.Disks, a.diskStatus(ctx, v, mounts, !raid))
	}
	if raid {
		v := &volume{name: a.cfg.Name, device: a.activeArray(ctx, disks), members: disks, mountPoint: a.cfg.MountPoint}
		if v.device == "" {
			rep.Disks = append(rep.Disks, DiskStatus{Device: a.arrayDevice(), Members: disks, Detail: "the array is not assembled"})
		} else if p, err := a.probe(ctx, v.device); err != nil {
			rep.Disks = append(rep.Disks, DiskStatus{Device: v.device, Members: disks, Error: err.Error()})
		} else {
			v.probe = p
			rep.Disks = append(rep.Disks, a.diskStatus(ctx, v, mounts, true))
		}
	}
	return rep, nil
}

func (a *Agent) diskStatus(ctx context.Context, v *volume, mounts []mountEntry, withMapping bool) DiskStatus {
	p := v.probe
	s := DiskStatus{Device: v.device, Members: v.members, State: p.State, Detail: p.Detail, Size: p.Size, LUKSUUID: p.UUID}
	if p.MDMember {
		s.Detail = "an md RAID member"
	}
	if p.MountedAt != "" {
		s.Mounted, s.MountPoint = true, p.MountedAt
	}
	if p.Metadata != nil {
		s.Keyslots = luks2.SortedIDs(p.Metadata.Keyslots)
	}
	if p.TokenErr != nil {
		s.TokenError = p.TokenErr.Error()
	}
	if p.State != StateOurs || !withMapping {
		return s
	}
	name := v.name
	if t := p.Token; t != nil {
		s.Volume, s.KMSKeyARN, s.TokenKeyslot, s.EncryptionContext = t.Volume, t.KMSKeyARN, t.Keyslots[0], t.EncryptionContext
		if t.Volume != "" {
			name = t.Volume
		}
	}
	m, err := a.mapping(ctx, name)
	if err != nil {
		s.Error = err.Error()
		return s
	}
	if m.Active && sameFile(m.Device, v.device) {
		s.Open, s.Mapper = true, filepath.Join(a.paths.Mapper, name)
		if mp := mountedAt(mounts, s.Mapper); mp != "" {
			s.Mounted, s.MountPoint = true, mp
		}
	}
	return s
}

// WriteText writes the report as a table.
func (r *StatusReport) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tSTATE\tVOLUME\tKMS KEY\tOPEN\tMOUNTED AT\tDETAIL")
	for _, d := range r.Disks {
		mounted := "-"
		if d.Mounted {
			mounted = d.MountPoint
		}
		detail := d.Detail
		if d.Error != "" {
			detail = "error: " + d.Error
		}
		if len(d.Members) > 0 {
			detail = strings.TrimSpace("raid0 of " + strings.Join(d.Members, ", ") + " " + detail)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\t%s\n", d.Device, orDash(string(d.State)), orDash(d.Volume), orDash(d.KMSKeyARN), d.Open, mounted, detail)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
