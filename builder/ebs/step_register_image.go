package ebs

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/packer-plugin-sdk/multistep"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// stepRegisterImage registers the AMI from the encrypted snapshots only,
// keeping the source's root device, layout and boot settings, tagged on
// creation. If the build is abandoned, Cleanup deregisters the AMI; it
// deletes the snapshots too only when they are its own (skip_launch's
// CopyImage made them), the others being the snapshot steps' to delete.
type stepRegisterImage struct {
	imageID string
	// registering: the AMI was asked for; if the call returned no ID (an
	// interrupt while it was under way), Cleanup looks for one by the run's
	// tag.
	registering bool
}

func (s *stepRegisterImage) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	b := getBuild(state)
	c := b.config
	client := b.clients.EC2(c.RawRegion)
	var id string
	var err error
	s.registering = true
	if b.copySourceImage {
		ui(state).Say(fmt.Sprintf("Copying %s as AMI %q encrypted under %s…", aws.ToString(b.source.ImageId), c.AMIName, b.keyARN))
		id, err = ebs.CopyImageEncrypted(ctx, client, ebs.CopyImageSpec{
			SourceImageID: aws.ToString(b.source.ImageId), SourceRegion: c.RawRegion, Name: c.AMIName, Description: b.tags.description,
			KmsKeyID: b.keyARN, ClientToken: copyToken(aws.ToString(b.source.ImageId)+"|"+b.runID, c.RawRegion, b.keyARN),
			Tags: b.leaseTags(b.imageTags()), SnapshotTags: b.leaseTags(b.snapshotTags()),
		})
	} else {
		var in *ec2.RegisterImageInput
		if in, err = registerInput(b); err != nil {
			return halt(state, err)
		}
		ui(state).Say(fmt.Sprintf("Registering AMI %q from the encrypted snapshots…", c.AMIName))
		id, err = ebs.RegisterImage(ctx, client, in)
	}
	if err != nil {
		return halt(state, err)
	}
	s.imageID = id
	b.setAMI(c.RawRegion, id)
	b.track(c.RawRegion, id)
	img, err := ebs.WaitImageAvailable(ctx, client, c.PollingConfig, id, imageProgress(ui(state), "AMI", stillWaitingEvery, time.Now))
	if err != nil {
		return halt(state, err)
	}
	// Snapshots used as is (already encrypted under the key) were not tagged
	// by a copy; tag them now.
	var untagged []string
	for _, src := range b.sourceSnapshots {
		if b.encrypted[src.Device] == src.SnapshotID && src.Created {
			untagged = append(untagged, src.SnapshotID)
		}
	}
	if err := ebs.CreateTags(ctx, client, untagged, b.snapshotTags()); err != nil {
		return halt(state, err)
	}
	b.mu.Lock()
	b.imageSnapshots = map[string]bool{}
	for _, snap := range ebs.ImageSnapshotIDs(img) {
		b.imageSnapshots[snap] = true
	}
	b.mu.Unlock()
	detail(ui(state), fmt.Sprintf("AMI %s is available in %s", id, c.RawRegion))
	if err := verify(ctx, state, client, c.RawRegion, img, b.keyARN); err != nil {
		return halt(state, err)
	}
	return multistep.ActionContinue
}

// registerInput lays out the AMI: the source's mappings with each EBS device
// pointing at its encrypted snapshot, extra launch volumes, then
// ami_block_device_mappings overriding by device name.
func registerInput(b *buildState) (*ec2.RegisterImageInput, error) {
	c, src := b.config, b.source
	in := &ec2.RegisterImageInput{
		Name:               aws.String(c.AMIName),
		Architecture:       src.Architecture,
		VirtualizationType: aws.String(string(src.VirtualizationType)),
		RootDeviceName:     src.RootDeviceName,
		EnaSupport:         c.AMIENASupport.ToBoolPointer(),
		SriovNetSupport:    src.SriovNetSupport,
		BootMode:           src.BootMode,
		TpmSupport:         src.TpmSupport,
		ImdsSupport:        src.ImdsSupport,
		TagSpecifications:  ebs.TagSpecs(map[types.ResourceType]map[string]string{types.ResourceTypeImage: b.leaseTags(b.imageTags())}),
	}
	if in.EnaSupport == nil {
		in.EnaSupport = src.EnaSupport
	}
	if c.AMISriovNetSupport {
		in.SriovNetSupport = aws.String("simple")
	}
	if c.AMIIMDSSupport != "" {
		in.ImdsSupport = types.ImdsSupportValues(c.AMIIMDSSupport)
	}
	if b.tags.description != "" {
		in.Description = aws.String(b.tags.description)
	}
	var order []string
	mappings := map[string]types.BlockDeviceMapping{}
	put := func(m types.BlockDeviceMapping) {
		dev := aws.ToString(m.DeviceName)
		if _, ok := mappings[dev]; !ok {
			order = append(order, dev)
		}
		mappings[dev] = m
	}
	// The source's ephemeral, no-device and empty-volume entries keep their
	// place; an empty volume is marked encrypted. Devices with a snapshot
	// take their encrypted snapshot below.
	for _, m := range src.BlockDeviceMappings {
		switch {
		case m.Ebs == nil:
			put(m)
		case m.Ebs.SnapshotId == nil:
			empty := *m.Ebs
			empty.Encrypted, empty.KmsKeyId = aws.Bool(true), nil
			put(types.BlockDeviceMapping{DeviceName: m.DeviceName, Ebs: &empty})
		}
	}
	for _, snap := range b.sourceSnapshots {
		encID, ok := b.encrypted[snap.Device]
		if !ok {
			return nil, fmt.Errorf("device %s has no encrypted snapshot; refusing to register an AMI with unencrypted data", snap.Device)
		}
		put(types.BlockDeviceMapping{DeviceName: aws.String(snap.Device), Ebs: &types.EbsBlockDevice{
			SnapshotId: aws.String(encID), VolumeSize: snap.VolumeSize, VolumeType: snap.VolumeType,
			Iops: snap.Iops, Throughput: snap.Throughput, DeleteOnTermination: snap.DeleteOnTermination,
		}})
	}
	for _, bd := range c.AMIMappings {
		put(amiMapping(bd, mappings[bd.DeviceName]))
	}
	for _, dev := range order {
		in.BlockDeviceMappings = append(in.BlockDeviceMappings, mappings[dev])
	}
	return in, nil
}

// amiMapping applies an ami_block_device_mappings entry over what the
// device already has. A new EBS volume is marked encrypted.
func amiMapping(bd BlockDevice, existing types.BlockDeviceMapping) types.BlockDeviceMapping {
	if m, ok := bd.instanceStoreMapping(); ok {
		return m
	}
	e := &types.EbsBlockDevice{Encrypted: aws.Bool(true), DeleteOnTermination: aws.Bool(true)}
	if existing.Ebs != nil {
		copied := *existing.Ebs
		e = &copied
	}
	bd.applyVolumeSettings(e)
	return types.BlockDeviceMapping{DeviceName: aws.String(bd.DeviceName), Ebs: e}
}

func (s *stepRegisterImage) Cleanup(state multistep.StateBag) {
	if !failed(state) {
		return
	}
	b := getBuild(state)
	ctx, cancel := cleanupContext()
	defer cancel()
	if s.imageID == "" && s.registering {
		// Registered as the build stopped? Its snapshots can't be deleted
		// while it holds them.
		found, err := b.madeByRun(ctx, b.config.RawRegion, ebs.LeasedImage)
		if err != nil {
			ui(state).Error(fmt.Sprintf("looking for an AMI made as the build stopped: %v", err))
		}
		if len(found) > 0 {
			s.imageID = found[0].ID
			detail(ui(state), fmt.Sprintf("AMI %s was made as the build stopped", s.imageID))
		}
	}
	if s.imageID == "" {
		return
	}
	client := b.clients.EC2(b.config.RawRegion)
	remove, removed := ebs.DeregisterImageWhenSettled, "Deregistered AMI "+s.imageID
	if b.copySourceImage {
		remove, removed = ebs.DeleteImageWhenSettled, "Removed AMI "+s.imageID+" and its snapshots"
	}
	if err := remove(ctx, client, b.config.PollingConfig, s.imageID); err != nil {
		ui(state).Error(fmt.Sprintf("removing half-made AMI %s: %v (remove it by hand)", s.imageID, err))
		return
	}
	b.removeAMI(b.config.RawRegion)
	b.untrack(b.config.RawRegion, s.imageID)
	b.mu.Lock()
	b.imageSnapshots = nil // no longer held by a kept AMI: the snapshot steps delete theirs
	b.mu.Unlock()
	detail(ui(state), removed)
	s.imageID = ""
}

// verify takes the AMI as its wait read it back (DescribeImages) and checks every snapshot behind it
// is encrypted under keyARN; only then does the build say so. A mismatch
// fails the build (and so removes the AMI), naming the snapshot, the key
// found and the key expected.
func verify(ctx context.Context, state multistep.StateBag, client ebs.EC2API, region string, img *types.Image, keyARN string) error {
	v, err := ebs.VerifyEncrypted(ctx, client, img, keyARN)
	if err != nil {
		return fmt.Errorf("%s: %w", region, err)
	}
	detail(ui(state), fmt.Sprintf("%s: AMI %s read back: %s encrypted under %s", region, v.ImageID, strings.Join(v.Snapshots, ", "), keyARN))
	return nil
}
