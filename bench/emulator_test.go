package bench

// The emulator's own benchmarks: it must keep up with 1,000 AMI copies in
// flight and several hundred requests per second on a 2-core machine.
//
//	go test -run '^$' -bench Emulator -benchtime 2000x ./bench/

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/sync/errgroup"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
)

// benchTargets and benchRegions are where the fleet's copies go.
func benchTargets() []string { return []string{"222222222222", "333333333333", "444444444444"} }
func benchRegions() []string {
	return []string{"us-east-1", "us-west-2", "eu-west-1", "eu-central-1"}
}

const benchSourceAMI = "ami-0a1b2c3d4e5f60001" // public amazon AMI in us-east-1

// emulatorFleet is an in-process emulator with 1,000 CopyImage calls in
// flight across three target accounts and four regions.
type emulatorFleet struct {
	srv     *emutest.Server
	clients map[string]*ec2.Client // "account|region"
	copies  map[string][]string    // "account|region" -> image IDs
	submit  time.Duration
}

func newEmulatorFleet(b testing.TB, copies int) *emulatorFleet {
	b.Helper()
	ctx := context.Background()
	// TimeScale 1: copies take emulated minutes, so every copy is still in
	// flight while the benchmark measures.
	srv := emutest.Start(b, awsemu.Options{TimeScale: 1, Limits: awsemu.Limits{ConcurrentImageCopies: copies, ConcurrentSnapshotCopies: copies}})
	f := &emulatorFleet{srv: srv, clients: map[string]*ec2.Client{}, copies: map[string][]string{}}
	// One HTTP client with enough keep-alive connections for the load, which
	// reads each response whole before the SDK decodes it: Go's transport can
	// close a connection whose request body smithy-go closed early while the
	// SDK is still decoding a large response (aws/aws-sdk-go-v2#2737; the SDK
	// retries it, but a benchmark without retries must not hit it).
	transport := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}
	httpClient := &http.Client{Transport: bufferedTransport{transport}}
	b.Cleanup(transport.CloseIdleConnections)
	for _, a := range benchTargets() {
		for _, r := range benchRegions() {
			f.clients[a+"|"+r] = ec2.NewFromConfig(srv.Config(ctx, a, r), func(o *ec2.Options) {
				o.RetryMaxAttempts = 1
				o.HTTPClient = httpClient
			})
		}
	}
	keys := sortedFleetKeys(f.clients)
	var mu sync.Mutex
	var g errgroup.Group
	g.SetLimit(16)
	start := time.Now()
	for i := 0; i < copies; i++ {
		key := keys[i%len(keys)]
		c := f.clients[key]
		g.Go(func() error {
			out, err := c.CopyImage(ctx, &ec2.CopyImageInput{
				SourceImageId: aws.String(benchSourceAMI), SourceRegion: aws.String("us-east-1"),
				Name: aws.String(fmt.Sprintf("bench-copy-%04d", i)), Encrypted: aws.Bool(true), KmsKeyId: aws.String("alias/amicrypt-target"),
				ClientToken: aws.String(fmt.Sprintf("bench-%04d", i)),
				TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeImage,
					Tags: []types.Tag{{Key: aws.String("amicrypt:source"), Value: aws.String(benchSourceAMI)}}}},
			})
			if err != nil {
				return fmt.Errorf("CopyImage %d into %s: %w", i, key, err)
			}
			mu.Lock()
			f.copies[key] = append(f.copies[key], aws.ToString(out.ImageId))
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	f.submit = time.Since(start)
	return f
}

func sortedFleetKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// pending counts the fleet's copies still pending, with batched
// DescribeImages calls (up to 100 IDs each).
func (f *emulatorFleet) pending(ctx context.Context) (pending, available int, err error) {
	for key, ids := range f.copies {
		for i := 0; i < len(ids); i += 100 {
			out, derr := f.clients[key].DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: ids[i:min(i+100, len(ids))]})
			if derr != nil {
				return 0, 0, derr
			}
			for _, img := range out.Images {
				switch img.State {
				case types.ImageStatePending:
					pending++
				case types.ImageStateAvailable:
					available++
				}
			}
		}
	}
	return pending, available, nil
}

// BenchmarkEmulatorCopiesInFlight: with 1,000 AMI copies in flight, clients
// poll them the way amicrypt's waiters do (DescribeImages by ID, one copy per
// call, as an unbatched waiter would) plus DescribeSnapshots; one b.N
// iteration is one request. Reports requests per second and latency
// percentiles, then checks every copy completes.
func BenchmarkEmulatorCopiesInFlight(b *testing.B) {
	const copies = 1000
	ctx := context.Background()
	f := newEmulatorFleet(b, copies)
	pending, _, err := f.pending(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if pending != copies {
		b.Fatalf("%d copies pending, want %d in flight", pending, copies)
	}

	keys := sortedFleetKeys(f.copies)
	var next atomic.Int64
	lat := newLatencies(b.N)
	b.SetParallelism(4) // 8 client goroutines on 2 cores
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := next.Add(1)
			key := keys[int(n)%len(keys)]
			ids := f.copies[key]
			t0 := time.Now()
			var err error
			if n%4 == 0 {
				_, err = f.clients[key].DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}, MaxResults: aws.Int32(50)})
			} else {
				_, err = f.clients[key].DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{ids[int(n)%len(ids)]}})
			}
			lat.add(time.Since(t0))
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	lat.report(b, start)
	b.ReportMetric(float64(copies)/f.submit.Seconds(), "copies-submitted/s")

	if pending, _, err = f.pending(ctx); err != nil || pending != copies {
		b.Fatalf("after the load: %d pending (%v), want all %d still in flight", pending, err, copies)
	}
	f.srv.Emulator().Advance(6 * time.Hour)
	_, available, err := f.pending(ctx)
	if err != nil || available != copies {
		b.Fatalf("after the copies' time: %d available (%v), want %d", available, err, copies)
	}
	if r := f.srv.Emulator().Check(awsemu.CheckOptions{}); !r.Pass {
		b.Fatalf("invariant checker: %s", r)
	}
}

// BenchmarkEmulatorMixedRequests: the mix a fan-out run sends while 1,000
// copies are in flight: DescribeImages by name and tag filters, batched
// waiter polls (DescribeImages with 20 IDs), DescribeInstances and CreateTags;
// one iteration is one request.
func BenchmarkEmulatorMixedRequests(b *testing.B) {
	ctx := context.Background()
	f := newEmulatorFleet(b, 1000)
	keys := sortedFleetKeys(f.copies)
	var next atomic.Int64
	lat := newLatencies(b.N)
	b.SetParallelism(4)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := next.Add(1)
			key := keys[int(n)%len(keys)]
			c := f.clients[key]
			ids := f.copies[key]
			t0 := time.Now()
			var err error
			switch n % 4 {
			case 0:
				_, err = c.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"},
					Filters: []types.Filter{{Name: aws.String("name"), Values: []string{fmt.Sprintf("bench-copy-%04d", n%1000)}},
						{Name: aws.String("tag:amicrypt:source"), Values: []string{benchSourceAMI}}}})
			case 1:
				_, err = c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
			case 2:
				_, err = c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{ids[int(n)%len(ids)]},
					Tags: []types.Tag{{Key: aws.String("poll"), Value: aws.String(fmt.Sprint(n))}}})
			default:
				from := int(n) % max(1, len(ids)-20)
				_, err = c.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: ids[from:min(from+20, len(ids))]})
			}
			lat.add(time.Since(t0))
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	lat.report(b, start)
}

// bufferedTransport reads a response body completely before returning it.
type bufferedTransport struct{ next http.RoundTripper }

func (t bufferedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// BenchmarkEmulatorServerOnly measures the server with a thin client: each
// iteration is one SigV4-signed DescribeImages poll by ID (a waiter's call)
// against the 1,000-copy fleet, sent with net/http and the body discarded,
// so the figure is the emulator's capacity rather than the SDK's decoding.
func BenchmarkEmulatorServerOnly(b *testing.B) {
	ctx := context.Background()
	f := newEmulatorFleet(b, 1000)
	keys := sortedFleetKeys(f.copies)
	type account struct{ ak, sk string }
	creds := map[string]account{}
	for _, a := range benchTargets() {
		ak, sk, err := f.srv.Emulator().Credentials(a)
		if err != nil {
			b.Fatal(err)
		}
		creds[a] = account{ak, sk}
	}
	transport := &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport}
	signer := v4.NewSigner()
	var next atomic.Int64
	lat := newLatencies(b.N)
	b.SetParallelism(4)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := next.Add(1)
			key := keys[int(n)%len(keys)]
			account, region, _ := strings.Cut(key, "|")
			ids := f.copies[key]
			form := url.Values{"Action": {"DescribeImages"}, "Version": {"2016-11-15"}, "ImageId.1": {ids[int(n)%len(ids)]}}
			body := form.Encode()
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.srv.URL()+"/", strings.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
			sum := sha256.Sum256([]byte(body))
			c := creds[account]
			t0 := time.Now()
			if err := signer.SignHTTP(ctx, aws.Credentials{AccessKeyID: c.ak, SecretAccessKey: c.sk}, req, hex.EncodeToString(sum[:]), "ec2", region, t0); err != nil {
				b.Error(err)
				return
			}
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			lat.add(time.Since(t0))
			if resp.StatusCode != http.StatusOK {
				b.Errorf("HTTP %d", resp.StatusCode)
				return
			}
		}
	})
	lat.report(b, start)
}

// latencies collects request durations for percentiles.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func newLatencies(n int) *latencies { return &latencies{d: make([]time.Duration, 0, n)} }

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// report stops the timer and reports the request rate since start and the
// p50/p99 latencies.
func (l *latencies) report(b *testing.B, start time.Time) {
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	b.ReportMetric(l.pct(50).Seconds()*1000, "p50-ms")
	b.ReportMetric(l.pct(99).Seconds()*1000, "p99-ms")
}

func (l *latencies) pct(p int) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0
	}
	sort.Slice(l.d, func(i, j int) bool { return l.d[i] < l.d[j] })
	return l.d[min(len(l.d)-1, len(l.d)*p/100)]
}

// BenchmarkEmulator200Clients drives the emulator the way a large fan-out
// and its neighbours do: 200 concurrent clients, each signing its own
// requests (SigV4, net/http, body discarded) as one of the three target
// accounts in one of four regions, with a mix of EC2 (a waiter's
// DescribeImages by ID, a look-up by name, DescribeInstances, CreateTags on a copy), KMS
// (DescribeKey, GenerateDataKey) and STS (GetCallerIdentity) calls, while
// 1,000 copies are in flight. One iteration is one request; it reports the
// request rate and the p50/p99 latency a client sees.
func BenchmarkEmulator200Clients(b *testing.B) {
	const clients = 200
	ctx := context.Background()
	f := newEmulatorFleet(b, 1000)
	keys := sortedFleetKeys(f.copies)
	type account struct{ ak, sk string }
	creds := map[string]account{}
	for _, a := range benchTargets() {
		ak, sk, err := f.srv.Emulator().Credentials(a)
		if err != nil {
			b.Fatal(err)
		}
		creds[a] = account{ak, sk}
	}
	transport := &http.Transport{MaxIdleConns: clients, MaxIdleConnsPerHost: clients}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport}
	signer := v4.NewSigner()
	// send signs and posts one request and drains the answer.
	send := func(n int64, service, region string, c account, form url.Values, target, body string) error {
		contentType := "application/x-www-form-urlencoded; charset=utf-8"
		if target != "" {
			contentType = "application/x-amz-json-1.1"
		} else {
			body = form.Encode()
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.srv.URL()+"/", strings.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", contentType)
		if target != "" {
			req.Header.Set("X-Amz-Target", target)
		}
		sum := sha256.Sum256([]byte(body))
		if err := signer.SignHTTP(ctx, aws.Credentials{AccessKeyID: c.ak, SecretAccessKey: c.sk}, req, hex.EncodeToString(sum[:]), service, region, time.Now()); err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("request %d (%s %s%s): HTTP %d", n, service, form.Get("Action"), target, resp.StatusCode)
		}
		return nil
	}
	var next atomic.Int64
	lat := newLatencies(b.N)
	b.SetParallelism((clients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := next.Add(1)
			key := keys[int(n)%len(keys)]
			acct, region, _ := strings.Cut(key, "|")
			ids := f.copies[key]
			c := creds[acct]
			t0 := time.Now()
			var err error
			switch n % 6 {
			case 0:
				err = send(n, "ec2", region, c, url.Values{"Action": {"DescribeImages"}, "Version": {"2016-11-15"}, "ImageId.1": {ids[int(n)%len(ids)]}}, "", "")
			case 1:
				err = send(n, "ec2", region, c, url.Values{"Action": {"DescribeImages"}, "Version": {"2016-11-15"}, "Owner.1": {"self"},
					"Filter.1.Name": {"name"}, "Filter.1.Value.1": {fmt.Sprintf("bench-copy-%04d", n%1000)}}, "", "")
			case 2:
				err = send(n, "ec2", region, c, url.Values{"Action": {"DescribeInstances"}, "Version": {"2016-11-15"}}, "", "")
			case 3:
				err = send(n, "ec2", region, c, url.Values{"Action": {"CreateTags"}, "Version": {"2016-11-15"},
					"ResourceId.1": {ids[int(n)%len(ids)]}, "Tag.1.Key": {"poll"}, "Tag.1.Value": {fmt.Sprint(n)}}, "", "")
			case 4:
				op, body := "TrentService.DescribeKey", `{"KeyId":"alias/amicrypt-target"}`
				if n%12 == 4 {
					op, body = "TrentService.GenerateDataKey", `{"KeyId":"alias/amicrypt-target","KeySpec":"AES_256"}`
				}
				err = send(n, "kms", region, c, nil, op, body)
			default:
				err = send(n, "sts", region, c, url.Values{"Action": {"GetCallerIdentity"}, "Version": {"2011-06-15"}}, "", "")
			}
			lat.add(time.Since(t0))
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	lat.report(b, start)
}
