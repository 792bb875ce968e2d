package ebs

import (
	"sync"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsauth"
)

// A copy's first poll, before anything of this run has been seen to
// finish, comes after priorBase + priorPerGiB × its largest snapshot, in
// AWS time: well under what AWS takes (minutes for a few GiB, tens of
// minutes cross-region), so the guess is early rather than late. After
// that, what the copies of this run took, and the snapshots' Progress,
// take over.
const (
	priorBase   = time.Minute
	priorPerGiB = 5 * time.Second
)

// Pacer decides when an ImageWaiter polls each copy: near its expected
// end rather than at a fixed cadence. The expectation comes from the
// copy's size and what the copies of this run took before it, then from
// its snapshots' Progress (one DescribeSnapshots per account-region per
// poll); each poll comes at the earliest moment the copy may be done,
// never later than the copy has run so far (so a wrong guess makes it at
// most twice as late) and never sooner than the poll delay after the
// last one. A Pacer is shared by the waiters of a run; it is safe for
// concurrent use.
//
// Hand-written: no SDK waiter paces by an estimate.
type Pacer struct {
	floor time.Duration // the poll delay: no copy is polled twice within it
	// scale is how long an AWS second lasts here: 1, unless the poll delay
	// comes from AWS_POLL_DELAY_SECONDS (tests against an emulator whose
	// clock runs faster set it to the default delay × their time scale).
	scale float64

	mu   sync.Mutex
	rate map[string]float64 // class → fewest seconds per GiB a copy of this run took
}

// NewPacer returns a Pacer for the polling settings.
func NewPacer(poll *awsauth.PollingConfig) *Pacer {
	p := &Pacer{floor: poll.Delay(), scale: 1, rate: map[string]float64{}}
	if poll == nil || poll.DelaySeconds == 0 {
		p.scale = float64(poll.Delay()) / float64(awsauth.DefaultPollDelay)
	}
	return p
}

// Floor is the shortest time between two polls of one copy.
func (p *Pacer) Floor() time.Duration { return p.floor }

// AWSTime is d of AWS time on this Pacer's clock (d for a nil Pacer).
func (p *Pacer) AWSTime(d time.Duration) time.Duration {
	if p == nil {
		return d
	}
	return time.Duration(float64(d) * p.scale)
}

// Observe records that a copy of sizeGiB (its largest snapshot) of class
// (say, "cross-region") took took.
func (p *Pacer) Observe(class string, sizeGiB int32, took time.Duration) {
	if sizeGiB <= 0 || took <= 0 {
		return
	}
	r := took.Seconds() / float64(sizeGiB)
	p.mu.Lock()
	defer p.mu.Unlock()
	if old, ok := p.rate[class]; !ok || r < old {
		p.rate[class] = r
	}
}

// Expect is how long a copy of sizeGiB of class is expected to take, at
// the least, and whether a copy of this run taught it. A class never seen
// borrows from the fastest class seen (a cross-region copy is no faster
// than one within a region), else the prior.
func (p *Pacer) Expect(class string, sizeGiB int32) (time.Duration, bool) {
	size := float64(max(sizeGiB, 1))
	p.mu.Lock()
	r, ok := p.rate[class]
	if !ok {
		for _, other := range p.rate {
			if !ok || other < r {
				r, ok = other, true
			}
		}
	}
	p.mu.Unlock()
	if ok {
		return time.Duration(r * size * float64(time.Second)), true
	}
	return p.AWSTime(priorBase + time.Duration(size*float64(priorPerGiB))), false
}

// First is the time from a copy's start to its first poll.
func (p *Pacer) First(class string, sizeGiB int32) time.Duration {
	if sizeGiB <= 0 {
		return p.floor // nothing known of it: the snapshots come with the first look
	}
	d, _ := p.Expect(class, sizeGiB)
	return max(p.floor, d)
}

// Next is the time from now to the next poll of a copy still pending
// after elapsed, whose snapshots are at percent (their lowest Progress;
// negative when unknown), and whether that poll is expected to find the
// copy done (then the snapshots' Progress need not be read with it).
func (p *Pacer) Next(class string, sizeGiB int32, elapsed time.Duration, percent int) (time.Duration, bool) {
	return p.NextIn(class, sizeGiB, elapsed, percent, EndWindow{})
}

// EndWindow is what a copy's Progress readings say of its end, as time
// since its start: after Lo, by Hi (zero: nothing read yet).
type EndWindow struct{ Lo, Hi time.Duration }

// Narrow adds a reading of percent (Progress, a whole percent rounded
// down) taken between from and to after the start (the call that read
// it was on the wire then). Each reading places the end, if Progress
// grows evenly, between from × 100/(percent+1) and to × 100/percent; the
// window keeps what every reading agrees on. A reading that agrees with
// none of it (Progress is not always even) replaces it. The copy may
// have begun up to slack before the start: the latest end is reckoned
// from the earliest start (a copy that began earlier is further along
// than its Progress says of the later start), so the poll at it finds
// the copy done.
func (w *EndWindow) Narrow(from, to time.Duration, percent int, slack time.Duration) {
	if percent <= 0 || percent >= 100 {
		return
	}
	lo := time.Duration(float64(from) * 100 / float64(percent+1))
	hi := time.Duration(float64(to+slack)*100/float64(percent)) - slack
	if w.Hi > 0 {
		if nlo, nhi := max(lo, w.Lo), min(hi, w.Hi); nlo < nhi {
			lo, hi = nlo, nhi
		}
	}
	w.Lo, w.Hi = lo, hi
}

// NextIn is Next with the copy's end window, narrowed by every reading so
// far (the last being percent at elapsed); an empty one is made from that
// reading alone.
func (p *Pacer) NextIn(class string, sizeGiB int32, elapsed time.Duration, percent int, win EndWindow) (time.Duration, bool) {
	// A wrong guess makes a poll at most twice late; once a tenth of the
	// copy is done, its Progress is trusted a little further.
	limit := max(p.floor, elapsed)
	if percent >= 10 {
		limit = max(p.floor, 2*elapsed)
	}
	var gap time.Duration
	done := false
	switch {
	case percent >= 100:
		gap, done = p.floor, true // the snapshots are done; the image follows
	case percent > 0:
		// Progress is a whole percent, rounded down: the copy ends between
		// lo and hi. While there is room, the last reading is taken a poll
		// delay before lo (one taken near the end is about 1% of the copy
		// wide: at 97% of a 615 s copy, 6 s), and the poll after it at hi,
		// when the copy is surely done. A reading any later may find the
		// copy a moment from done yet a poll delay from the next look: a
		// reading at lo of a 16 s window read 99%, and the copy was seen
		// done 12 s after it ended.
		lo, hi := win.Lo, win.Hi
		if hi <= 0 {
			win.Narrow(elapsed, elapsed, percent, 0)
			lo, hi = win.Lo, win.Hi
		}
		gap = lo - elapsed
		sharp := max(p.floor/3, lo*3/200)
		switch {
		case hi-lo <= sharp:
			gap, done = hi-elapsed, hi-elapsed <= limit
		case lo-p.floor >= elapsed+p.floor:
			gap = lo - p.floor - elapsed
		case hi-lo <= p.floor:
			gap, done = hi-elapsed, hi-elapsed <= limit
		}
	default:
		if exp, _ := p.Expect(class, sizeGiB); exp > elapsed {
			gap = exp - elapsed
		} else {
			gap = limit
		}
	}
	return min(max(gap, p.floor), limit), done
}
