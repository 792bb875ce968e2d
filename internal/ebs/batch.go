package ebs

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsauth"
)

// maxFilterValues is EC2's limit on values in one filter.
const maxFilterValues = 200

// ImageWaiter waits for many images of one account and region with one
// DescribeImages call per poll, however many callers wait (aws-ebs-csi-driver
// batches DescribeVolumes the same way). No SDK waiter batches, hence this.
// Every image wait in amicrypt goes through it (WaitImageAvailable is one
// caller). Without a Pacer it polls every poll delay; with one, each image
// is polled when its Pacer expects it may be done, and a poll made for one
// image serves every image waiting in the account-region. The zero value
// is not usable; use NewImageWaiter.
type ImageWaiter struct {
	client EC2API
	poll   *awsauth.PollingConfig
	pacer  *Pacer

	mu      sync.Mutex
	waiting map[string][]*imageWait
	running bool
	wake    chan struct{}
}

type imageWait struct {
	done     chan imageWaitResult
	progress func(*types.Image)
	opts     WaitOptions
	start    time.Time
	due      time.Time // next poll
	tickDue  time.Time // next Tick while no poll sees the image
	size     int32     // GiB, largest snapshot; 0 unknown
	polls    int
	notFound int
	last     string
	lastImg  *types.Image
	percent  int
	window   EndWindow // what the Progress readings say of the end
	// atEnd is set when the next poll is expected to find the image
	// available: its snapshots' Progress is not read then, and while it
	// is still pending after, it is polled every poll delay.
	atEnd bool
}

type imageWaitResult struct {
	img *types.Image
	err error
}

// WaitOptions are the optional parts of a paced wait.
type WaitOptions struct {
	// Progress is called with the image after every poll that sees it.
	Progress func(*types.Image)
	// Tick is called at least every TickEvery while the image is pending,
	// whether or not a poll happened, so a caller can say how it goes.
	Tick      func(WaitStatus)
	TickEvery time.Duration
	// Started is when the operation began (before CopyImage); default now.
	Started time.Time
	// Slack is how much earlier than Started it may have begun (the time
	// its call was on the wire): the poll expected to find it done allows
	// for it.
	Slack time.Duration
	// SizeGiB is the size of the largest snapshot, when known beforehand:
	// the first poll is timed by it.
	SizeGiB int32
	// Class groups the copies that take alike (say, "cross-region"): the
	// Pacer learns from each class's finished copies.
	Class string
}

// WaitStatus is how a paced wait stands, for progress lines.
type WaitStatus struct {
	Image    *types.Image  // as last seen; nil before the first poll
	Elapsed  time.Duration // since the wait's start
	Percent  int           // lowest snapshot Progress; negative when unknown
	NextPoll time.Duration // from now
}

// NewImageWaiter returns a waiter for the client's account and region that
// polls every poll delay.
func NewImageWaiter(client EC2API, poll *awsauth.PollingConfig) *ImageWaiter {
	return NewPacedImageWaiter(client, poll, nil)
}

// NewPacedImageWaiter returns a waiter for the client's account and region
// that polls as pacer expects (every poll delay when pacer is nil).
func NewPacedImageWaiter(client EC2API, poll *awsauth.PollingConfig, pacer *Pacer) *ImageWaiter {
	return &ImageWaiter{client: client, poll: poll, pacer: pacer, waiting: map[string][]*imageWait{}, wake: make(chan struct{}, 1)}
}

// Wait blocks until the image is available (returning it), fails (a
// *StateError with AWS's reason), stays unseen, runs out of polls or ctx ends.
func (w *ImageWaiter) Wait(ctx context.Context, imageID string, progress func(*types.Image)) (*types.Image, error) {
	return w.WaitPaced(ctx, imageID, WaitOptions{Progress: progress})
}

// WaitPaced is Wait with options. The wait gives up after max_attempts
// polls of this image, or once it has lasted max_attempts × the poll delay.
func (w *ImageWaiter) WaitPaced(ctx context.Context, imageID string, opts WaitOptions) (*types.Image, error) {
	now := time.Now()
	req := &imageWait{done: make(chan imageWaitResult, 1), progress: opts.Progress, opts: opts, start: opts.Started, size: opts.SizeGiB, percent: -1}
	if req.start.IsZero() || req.start.After(now) {
		req.start = now
	}
	first := w.poll.Delay()
	if w.pacer != nil {
		first = w.pacer.First(opts.Class, opts.SizeGiB)
	}
	req.due = req.start.Add(first)
	if req.due.Before(now) {
		req.due = now
	}
	if opts.Tick != nil && opts.TickEvery > 0 {
		req.tickDue = now.Add(opts.TickEvery)
	}
	w.mu.Lock()
	w.waiting[imageID] = append(w.waiting[imageID], req)
	if !w.running {
		w.running = true
		go w.loop()
	}
	w.mu.Unlock()
	select { // the loop may be asleep until a later due
	case w.wake <- struct{}{}:
	default:
	}
	select {
	case r := <-req.done:
		return r.img, r.err
	case <-ctx.Done():
		w.remove(imageID, req)
		return nil, fmt.Errorf("waiting for image %s to be available: %w", imageID, ctx.Err())
	}
}

func (w *ImageWaiter) remove(imageID string, req *imageWait) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.removeLocked(imageID, req)
}

// next is the earliest poll due and whether any poll is due at all, and
// the earliest tick. Called with w.mu held.
func (w *ImageWaiter) nextLocked() (poll, tick time.Time, any bool) {
	for _, reqs := range w.waiting {
		for _, r := range reqs {
			if !any || r.due.Before(poll) {
				poll = r.due
			}
			if !r.tickDue.IsZero() && (tick.IsZero() || r.tickDue.Before(tick)) {
				tick = r.tickDue
			}
			any = true
		}
	}
	return poll, tick, any
}

func (w *ImageWaiter) loop() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		w.mu.Lock()
		pollAt, tickAt, any := w.nextLocked()
		if !any {
			w.running = false
			w.mu.Unlock()
			return
		}
		now := time.Now()
		if now.Before(pollAt) {
			at := pollAt
			if !tickAt.IsZero() && tickAt.Before(at) {
				at = tickAt
			}
			if !now.Before(at) { // a tick is due: say how each copy stands
				w.tickLocked(now)
				w.mu.Unlock()
				continue
			}
			w.mu.Unlock()
			timer.Reset(at.Sub(now))
			select {
			case <-timer.C:
			case <-w.wake:
				if !timer.Stop() {
					<-timer.C
				}
			}
			continue
		}
		ids := make([]string, 0, len(w.waiting))
		for id := range w.waiting {
			ids = append(ids, id)
		}
		w.mu.Unlock()

		found, err := w.describe(ids)
		var percents map[string]int
		// AWS reads the Progress after read (DescribeSnapshots is sent
		// below) and before now: the earliest end is reckoned from read,
		// the latest from now. Under load now can be well after the read.
		read := time.Now()
		if err == nil && w.pacer != nil {
			w.mu.Lock()
			wanted := map[string]*types.Image{}
			for id, img := range found {
				for _, req := range w.waiting[id] {
					if !req.atEnd {
						wanted[id] = img
					}
				}
			}
			w.mu.Unlock()
			percents = w.snapshotProgress(wanted)
		}
		now = time.Now()
		w.mu.Lock()
		for _, id := range ids {
			for _, req := range w.waiting[id] {
				if r, done := w.settle(id, req, found[id], percents, err, read, now); done {
					req.done <- r
					w.removeLocked(id, req)
				}
			}
		}
		w.mu.Unlock()
	}
}

// tickLocked calls the Tick of every wait whose tick is due.
func (w *ImageWaiter) tickLocked(now time.Time) {
	for _, reqs := range w.waiting {
		for _, r := range reqs {
			if r.tickDue.IsZero() || now.Before(r.tickDue) {
				continue
			}
			r.tickDue = now.Add(r.opts.TickEvery)
			r.opts.Tick(WaitStatus{Image: r.lastImg, Elapsed: now.Sub(r.start), Percent: r.percent, NextPoll: r.due.Sub(now)})
		}
	}
}

// snapshotProgress reads the Progress of the snapshots behind the pending
// images, one DescribeSnapshots for all, and returns each image's lowest.
// A failed read only leaves the pacing without it.
func (w *ImageWaiter) snapshotProgress(found map[string]*types.Image) map[string]int {
	bySnap := map[string]string{}
	var snaps []string
	for id, img := range found {
		if img.State != types.ImageStatePending {
			continue
		}
		for _, s := range ImageSnapshotIDs(img) {
			bySnap[s] = id
			snaps = append(snaps, s)
		}
	}
	if len(snaps) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out := map[string]int{}
	for start := 0; start < len(snaps); start += maxFilterValues {
		end := min(start+maxFilterValues, len(snaps))
		p := ec2.NewDescribeSnapshotsPaginator(w.client, &ec2.DescribeSnapshotsInput{
			Filters: []types.Filter{{Name: aws.String("snapshot-id"), Values: snaps[start:end]}},
		})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return out
			}
			for _, s := range page.Snapshots {
				img := bySnap[aws.ToString(s.SnapshotId)]
				pct := 100
				if s.State != types.SnapshotStateCompleted {
					if _, err := fmt.Sscanf(aws.ToString(s.Progress), "%d%%", &pct); err != nil {
						pct = -1
					}
				}
				if old, ok := out[img]; !ok || pct < old {
					out[img] = pct
				}
			}
		}
	}
	return out
}

func (w *ImageWaiter) removeLocked(id string, req *imageWait) {
	reqs := w.waiting[id]
	for i, r := range reqs {
		if r == req {
			reqs = append(reqs[:i], reqs[i+1:]...)
			break
		}
	}
	if len(reqs) == 0 {
		delete(w.waiting, id)
	} else {
		w.waiting[id] = reqs
	}
}

// settle decides one waiter's fate after a poll, and when it is polled next.
// The snapshots' Progress (percents) was read between read and now.
func (w *ImageWaiter) settle(id string, req *imageWait, img *types.Image, percents map[string]int, pollErr error, read, now time.Time) (imageWaitResult, bool) {
	due := !now.Before(req.due)
	if due {
		req.polls++ // a poll this image was due for; others' polls are free
	}
	elapsed := now.Sub(req.start)
	switch {
	case pollErr != nil:
		return imageWaitResult{err: fmt.Errorf("waiting for image %s to be available: %w", id, pollErr)}, true
	case img == nil:
		req.notFound++
		if req.notFound > notFoundGrace {
			return imageWaitResult{err: &NotFoundError{Kind: "image", ID: id}}, true
		}
	default:
		req.notFound = 0
		req.last = StatusImage(img)
		req.lastImg = img
		if req.size == 0 {
			req.size = largestSnapshotGiB(img)
		}
		if pct, ok := percents[id]; ok {
			req.percent = pct
			req.window.Narrow(read.Sub(req.start), elapsed, pct, req.opts.Slack)
		}
		if req.progress != nil {
			req.progress(img)
		}
		if img.State == types.ImageStateAvailable {
			if w.pacer != nil {
				w.pacer.Observe(req.opts.Class, req.size, elapsed)
			}
			return imageWaitResult{img: img}, true
		}
		if se := imageFailure(img); se != nil {
			return imageWaitResult{img: img, err: se}, true
		}
	}
	budget := w.poll.Delay() * time.Duration(w.poll.Attempts())
	if req.polls >= w.poll.Attempts() || (w.pacer != nil && elapsed >= budget) {
		return imageWaitResult{err: &TimeoutError{Kind: "image", ID: id, Want: "available", LastState: req.last,
			Waited: max(elapsed, w.poll.Delay()*time.Duration(req.polls))}}, true
	}
	switch {
	case w.pacer == nil || img == nil:
		req.due = now.Add(w.poll.Delay())
	case req.atEnd && !due:
		// Another image's poll: this one's stays when it is expected done.
	case req.atEnd:
		req.due = now.Add(w.pacer.Floor()) // late: every poll delay till done
	default:
		gap, atEnd := w.pacer.NextIn(req.opts.Class, req.size, elapsed, req.percent, req.window)
		req.due, req.atEnd = now.Add(gap), atEnd
	}
	return imageWaitResult{}, false
}

// largestSnapshotGiB is the size of the image's largest snapshot, from its
// block device mappings; 0 when none says.
func largestSnapshotGiB(img *types.Image) int32 {
	var n int32
	for _, bdm := range img.BlockDeviceMappings {
		if bdm.Ebs != nil {
			n = max(n, aws.ToInt32(bdm.Ebs.VolumeSize))
		}
	}
	return n
}

// describe fetches the images by an image-id filter, which (unlike ImageIds)
// doesn't fail the whole call when one ID isn't visible yet. One poll serves
// every waiter, so no single caller's context may end it; each caller's own
// context ends its Wait, and the poll is bounded by a timeout of its own.
func (w *ImageWaiter) describe(ids []string) (map[string]*types.Image, error) {
	found := map[string]*types.Image{}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for start := 0; start < len(ids); start += maxFilterValues {
		end := min(start+maxFilterValues, len(ids))
		p := ec2.NewDescribeImagesPaginator(w.client, &ec2.DescribeImagesInput{
			Filters: []types.Filter{{Name: aws.String("image-id"), Values: ids[start:end]}},
		})
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				return nil, err
			}
			for i := range out.Images {
				found[aws.ToString(out.Images[i].ImageId)] = &out.Images[i]
			}
		}
	}
	return found, nil
}
