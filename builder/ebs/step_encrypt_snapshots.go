package ebs

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	"golang.org/x/sync/errgroup"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/ebs"
)

// stepEncryptSnapshots copies each snapshot with Encrypted=true under the
// key, in parallel, tagged on creation. A snapshot already encrypted under
// the key is used as is: no second copy of the data. Cleanup deletes the
// copies when the build is abandoned.
type stepEncryptSnapshots struct {
	mu     sync.Mutex
	copies []string
}

func (s *stepEncryptSnapshots) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	b := getBuild(state)
	c := b.config
	client := b.clients.EC2(c.RawRegion)
	b.encrypted = map[string]string{}
	if b.copySourceImage {
		return multistep.ActionContinue
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	for _, src := range b.sourceSnapshots {
		if src.Encrypted && src.KmsKeyID == b.keyARN {
			detail(ui(state), fmt.Sprintf("%s: snapshot %s is already encrypted under %s; no copy needed", src.Device, src.SnapshotID, b.keyARN))
			b.encrypted[src.Device] = src.SnapshotID
			continue
		}
		g.Go(func() error {
			detail(ui(state), fmt.Sprintf("%s: copying snapshot %s encrypted under %s…", src.Device, src.SnapshotID, b.keyARN))
			tags := b.leaseTags(merged(b.snapshotTags(), map[string]string{"amicrypt:source-snapshot": src.SnapshotID}))
			snap, err := ebs.CopySnapshotEncryptedRetrying(gctx, client, c.PollingConfig, ebs.CopySnapshotSpec{
				SourceSnapshotID: src.SnapshotID, SourceRegion: c.RawRegion, KmsKeyID: b.keyARN,
				Description: fmt.Sprintf("%s of %s, encrypted by amicrypt", src.Device, c.AMIName), Tags: tags,
			}, snapshotProgress(ui(state), "encrypted copy for "+src.Device), ebs.CopyRetry{
				OnRetry: func(msg string) { detail(ui(state), src.Device+": "+msg) },
				Recheck: func(ctx context.Context, _ error) error { return b.keyStillUsable(ctx, c.RawRegion, b.keyARN) },
				Started: func(id string) {
					b.track(c.RawRegion, id)
					s.mu.Lock()
					s.copies = append(s.copies, id)
					s.mu.Unlock()
				},
			})
			if err != nil {
				return err
			}
			mu.Lock()
			b.encrypted[src.Device] = aws.ToString(snap.SnapshotId)
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return halt(state, err)
	}
	return multistep.ActionContinue
}

func (s *stepEncryptSnapshots) Cleanup(state multistep.StateBag) {
	if !failed(state) {
		return
	}
	s.mu.Lock()
	copies := append([]string(nil), s.copies...)
	s.copies = nil
	s.mu.Unlock()
	b := getBuild(state)
	ctx, cancel := cleanupContext()
	defer cancel()
	client := b.clients.EC2(b.config.RawRegion)
	for _, id := range copies {
		if err := ebs.DeleteSnapshotWhenSettled(ctx, client, b.config.PollingConfig, id); err != nil {
			ui(state).Error(fmt.Sprintf("%v (delete it by hand)", err))
			continue
		}
		b.untrack(b.config.RawRegion, id)
		detail(ui(state), "Deleted encrypted copy "+id)
	}
}

// keyStillUsable is asked before a failed encrypted copy is tried afresh:
// a key disabled or scheduled for deletion since the preflight fails every
// copy, so it ends the retries, naming the key and the fix. Another error
// reading the key leaves the retry to go ahead.
func (b *buildState) keyStillUsable(ctx context.Context, region, keyARN string) error {
	_, err := ebs.CheckKey(ctx, b.clients.KMS(region), keyARN, ebs.KeyRequirements{Region: region, Account: b.account})
	var ke *ebs.KeyError
	if errors.As(err, &ke) {
		return fmt.Errorf("the key is the cause: %w", err)
	}
	return nil
}

// snapshotTags are the tags of the AMI's snapshots: the run tags (unless
// skip_ami_run_tags) under snapshot_tags, as amazon-ebs tags them.
func (b *buildState) snapshotTags() map[string]string {
	if b.config.SkipAMIRunTags {
		return b.tags.snapshot
	}
	return merged(b.tags.run, b.tags.snapshot)
}

// imageTags are the AMI's tags: the run tags (unless skip_ami_run_tags)
// under tags, as amazon-ebs tags it.
func (b *buildState) imageTags() map[string]string {
	if b.config.SkipAMIRunTags {
		return b.tags.ami
	}
	return merged(b.tags.run, b.tags.ami)
}
