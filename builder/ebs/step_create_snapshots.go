package ebs

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	"golang.org/x/sync/errgroup"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// stepCreateSnapshots snapshots every EBS volume of the stopped instance, in
// parallel. With skip_launch it takes the source AMI's own snapshots instead
// and creates nothing. Its Cleanup deletes the snapshots it made, except
// those a kept AMI uses (launch volumes already encrypted under the key).
type stepCreateSnapshots struct {
	mu      sync.Mutex
	created []string
}

func (s *stepCreateSnapshots) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	b := getBuild(state)
	client := b.clients.EC2(b.config.RawRegion)
	if b.config.SkipLaunch {
		b.sourceSnapshots = sourceAMISnapshots(b.source)
		// Whether a snapshot is encrypted, and under which key, only
		// DescribeSnapshots says: DescribeImages doesn't return the key.
		for i, snap := range b.sourceSnapshots {
			found, err := ebs.FindSnapshotByID(ctx, client, snap.SnapshotID)
			switch {
			case ebs.IsNotFound(err):
				b.copySourceImage = true
			case err != nil:
				return halt(state, err)
			default:
				b.sourceSnapshots[i].Encrypted = aws.ToBool(found.Encrypted)
				b.sourceSnapshots[i].KmsKeyID = aws.ToString(found.KmsKeyId)
			}
		}
		if b.copySourceImage {
			if len(b.config.AMIMappings) > 0 {
				return halt(state, fmt.Errorf("ami_block_device_mappings: the snapshots of %s are not readable by this account, so skip_launch must copy the whole AMI, which keeps its layout; remove ami_block_device_mappings or build with skip_launch = false", aws.ToString(b.source.ImageId)))
			}
			ui(state).Say(fmt.Sprintf("skip_launch: the snapshots of %s are not readable by this account; making an encrypted copy of the AMI itself", aws.ToString(b.source.ImageId)))
			return multistep.ActionContinue
		}
		ui(state).Say(fmt.Sprintf("skip_launch: re-encrypting the %d snapshot(s) of %s", len(b.sourceSnapshots), aws.ToString(b.source.ImageId)))
		return multistep.ActionContinue
	}
	var devices []types.InstanceBlockDeviceMapping
	var volumeIDs []string
	for _, m := range b.instance.BlockDeviceMappings {
		if m.Ebs != nil && m.Ebs.VolumeId != nil {
			devices = append(devices, m)
			volumeIDs = append(volumeIDs, *m.Ebs.VolumeId)
		}
	}
	if len(volumeIDs) == 0 {
		return halt(state, fmt.Errorf("instance %s has no EBS volume to snapshot", state.Get("instance_id")))
	}
	vols, err := ebs.FindVolumes(ctx, client, volumeIDs)
	if err != nil {
		return halt(state, err)
	}
	byID := map[string]types.Volume{}
	for _, v := range vols {
		byID[aws.ToString(v.VolumeId)] = v
	}
	ui(state).Say(fmt.Sprintf("Snapshotting %d volume(s)…", len(devices)))
	snaps := make([]sourceSnapshot, len(devices))
	g, gctx := errgroup.WithContext(ctx)
	for i, d := range devices {
		g.Go(func() error {
			vol, ok := byID[aws.ToString(d.Ebs.VolumeId)]
			if !ok {
				return fmt.Errorf("volume %s of %s not found", aws.ToString(d.Ebs.VolumeId), aws.ToString(d.DeviceName))
			}
			id, err := ebs.CreateSnapshot(gctx, client, aws.ToString(vol.VolumeId),
				fmt.Sprintf("amicrypt intermediate snapshot of %s for %s", aws.ToString(d.DeviceName), b.config.AMIName),
				b.leaseTags(map[string]string{"amicrypt:intermediate": "true"}))
			if err != nil {
				return err
			}
			b.track(b.config.RawRegion, id)
			s.mu.Lock()
			s.created = append(s.created, id)
			s.mu.Unlock()
			snap, err := ebs.WaitSnapshotCompleted(gctx, client, b.config.PollingConfig, id, snapshotProgress(ui(state), "snapshot of "+aws.ToString(d.DeviceName)))
			if err != nil {
				return err
			}
			snaps[i] = sourceSnapshot{
				Device: aws.ToString(d.DeviceName), SnapshotID: id, Created: true,
				Encrypted: aws.ToBool(snap.Encrypted), KmsKeyID: aws.ToString(snap.KmsKeyId),
				VolumeSize: vol.Size, VolumeType: vol.VolumeType, Iops: vol.Iops, Throughput: vol.Throughput,
				DeleteOnTermination: d.Ebs.DeleteOnTermination,
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return halt(state, err)
	}
	b.sourceSnapshots = snaps
	return multistep.ActionContinue
}

// sourceAMISnapshots lists the EBS devices of an AMI as snapshots to copy.
// Their encryption is left for DescribeSnapshots to fill in.
func sourceAMISnapshots(img *types.Image) []sourceSnapshot {
	var snaps []sourceSnapshot
	for _, m := range img.BlockDeviceMappings {
		if m.Ebs == nil || m.Ebs.SnapshotId == nil {
			continue
		}
		snaps = append(snaps, sourceSnapshot{
			Device: aws.ToString(m.DeviceName), SnapshotID: *m.Ebs.SnapshotId,
			VolumeSize: m.Ebs.VolumeSize, VolumeType: m.Ebs.VolumeType, Iops: m.Ebs.Iops, Throughput: m.Ebs.Throughput,
			DeleteOnTermination: m.Ebs.DeleteOnTermination,
		})
	}
	return snaps
}

func (s *stepCreateSnapshots) Cleanup(state multistep.StateBag) {
	s.mu.Lock()
	created := append([]string(nil), s.created...)
	s.mu.Unlock()
	if len(created) == 0 {
		return
	}
	b := getBuild(state)
	ctx, cancel := cleanupContext()
	defer cancel()
	client := b.clients.EC2(b.config.RawRegion)
	sort.Strings(created)
	var kept []string
	for _, id := range created {
		if b.keptSnapshot(id) {
			kept = append(kept, id)
			continue
		}
		if err := ebs.DeleteSnapshotWhenSettled(ctx, client, b.config.PollingConfig, id); err != nil {
			ui(state).Error(fmt.Sprintf("%v (delete it by hand)", err))
			continue
		}
		b.untrack(b.config.RawRegion, id)
		detail(ui(state), "Deleted intermediate snapshot "+id)
	}
	s.mu.Lock()
	s.created = kept
	s.mu.Unlock()
}

func (b *buildState) keptSnapshot(id string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.imageSnapshots[id]
}
