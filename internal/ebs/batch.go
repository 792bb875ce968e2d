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
// caller). The zero value is not usable; use NewImageWaiter.
type ImageWaiter struct {
	client EC2API
	poll   *awsauth.PollingConfig

	mu      sync.Mutex
	waiting map[string][]*imageWait
	running bool
}

type imageWait struct {
	done     chan imageWaitResult
	progress func(*types.Image)
	polls    int
	notFound int
	last     string
}

type imageWaitResult struct {
	img *types.Image
	err error
}

// NewImageWaiter returns a waiter for the client's account and region.
func NewImageWaiter(client EC2API, poll *awsauth.PollingConfig) *ImageWaiter {
	return &ImageWaiter{client: client, poll: poll, waiting: map[string][]*imageWait{}}
}

// Wait blocks until the image is available (returning it), fails (a
// *StateError with AWS's reason), stays unseen, runs out of polls or ctx ends.
func (w *ImageWaiter) Wait(ctx context.Context, imageID string, progress func(*types.Image)) (*types.Image, error) {
	req := &imageWait{done: make(chan imageWaitResult, 1), progress: progress}
	w.mu.Lock()
	w.waiting[imageID] = append(w.waiting[imageID], req)
	if !w.running {
		w.running = true
		go w.loop()
	}
	w.mu.Unlock()
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

func (w *ImageWaiter) loop() {
	for {
		time.Sleep(w.poll.Delay())
		w.mu.Lock()
		ids := make([]string, 0, len(w.waiting))
		for id := range w.waiting {
			ids = append(ids, id)
		}
		if len(ids) == 0 {
			w.running = false
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()

		found, err := w.describe(ids)
		w.mu.Lock()
		for _, id := range ids {
			for _, req := range w.waiting[id] {
				if r, done := w.settle(id, req, found[id], err); done {
					req.done <- r
					w.removeLocked(id, req)
				}
			}
		}
		w.mu.Unlock()
	}
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

// settle decides one waiter's fate after a poll.
func (w *ImageWaiter) settle(id string, req *imageWait, img *types.Image, pollErr error) (imageWaitResult, bool) {
	req.polls++
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
		if req.progress != nil {
			req.progress(img)
		}
		if img.State == types.ImageStateAvailable {
			return imageWaitResult{img: img}, true
		}
		if se := imageFailure(img); se != nil {
			return imageWaitResult{img: img, err: se}, true
		}
	}
	if req.polls >= w.poll.Attempts() {
		return imageWaitResult{err: &TimeoutError{Kind: "image", ID: id, Want: "available", LastState: req.last,
			Waited: w.poll.Delay() * time.Duration(req.polls)}}, true
	}
	return imageWaitResult{}, false
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
