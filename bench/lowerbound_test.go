package bench

import (
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
)

func TestLowerBound(t *testing.T) {
	src := SourceImage{Region: "us-east-1", SnapshotGiB: []int{8}}
	fanout := func(accounts int, regions ...string) []Destination {
		var out []Destination
		for a := range accounts {
			for _, r := range regions {
				out = append(out, Destination{Account: string(rune('a' + a)), Region: r, Copies: 1})
			}
		}
		return out
	}
	tests := []struct {
		name    string
		model   Model
		src     SourceImage
		dests   []Destination
		want    time.Duration
		waves   int
		binding string
		wantErr string
	}{
		// 45 s + 20 s/GiB × 8 GiB = 205 s in the source region.
		{name: "one copy, same region", model: DefaultModel(), src: src, dests: fanout(1, "us-east-1"), want: 205 * time.Second, waves: 1, binding: "a/us-east-1"},
		// × 3 across regions: 615 s, whatever the number of destinations.
		{name: "5x2", model: DefaultModel(), src: src, dests: fanout(5, "us-east-1", "eu-west-1"), want: 615 * time.Second, waves: 1, binding: "a/eu-west-1"},
		{name: "100x5", model: DefaultModel(), src: src, dests: fanout(100, "us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2"), want: 615 * time.Second, waves: 1},
		// 120 copies into one account-region with a quota of 50: 3 waves.
		{name: "quota waves", model: DefaultModel(), src: src, dests: []Destination{{Account: "x", Region: "us-east-1", Copies: 120}}, want: 3 * 205 * time.Second, waves: 3, binding: "x/us-east-1"},
		// Same-region waves can outweigh one cross-region copy.
		{name: "waves beat distance", model: Model{Latency: awsemu.DefaultLatency(), CrossRegionFactor: 3, ImageCopyQuota: 1},
			src:   src,
			dests: []Destination{{Account: "x", Region: "us-east-1", Copies: 4}, {Account: "x", Region: "eu-west-1", Copies: 1}},
			want:  4 * 205 * time.Second, waves: 4, binding: "x/us-east-1"},
		// The image is available when its longest snapshot is.
		{name: "two snapshots", model: DefaultModel(), src: SourceImage{Region: "us-east-1", SnapshotGiB: []int{8, 100}}, dests: fanout(1, "us-east-1"), want: (45 + 2000) * time.Second, waves: 1},
		// Registration alone when the snapshots are instant.
		{name: "registration floor", model: Model{Latency: map[string]awsemu.LatencySpec{awsemu.LatencyImageRegister: {Base: 5 * time.Second}}, CrossRegionFactor: 3, ImageCopyQuota: 50},
			src: src, dests: fanout(1, "eu-west-1"), want: 5 * time.Second, waves: 1},
		{name: "no quota", model: Model{Latency: awsemu.DefaultLatency()}, src: src, dests: fanout(1, "us-east-1"), wantErr: "quota"},
		{name: "no snapshot", model: DefaultModel(), src: SourceImage{Region: "us-east-1"}, dests: fanout(1, "us-east-1"), wantErr: "no snapshot"},
		{name: "no copies", model: DefaultModel(), src: src, wantErr: "no destination"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.model.LowerBound(tc.src, tc.dests)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b.Makespan != tc.want || b.Waves != tc.waves {
				t.Errorf("bound = %s in %d waves, want %s in %d", b.Makespan, b.Waves, tc.want, tc.waves)
			}
			if got := b.Binding.Account + "/" + b.Binding.Region; tc.binding != "" && got != tc.binding {
				t.Errorf("binding destination = %s, want %s", got, tc.binding)
			}
		})
	}
}

func TestExplain(t *testing.T) {
	m := DefaultModel()
	src := SourceImage{Region: "us-east-1", SnapshotGiB: []int{8}}
	b, err := m.LowerBound(src, []Destination{{Account: "200000000001", Region: "eu-west-1", Copies: 1}})
	if err != nil {
		t.Fatal(err)
	}
	want := "1 wave(s) (1 copies ÷ quota 50, rounded up) × (45s + 20s/GiB × 8 GiB) × 3 across regions, into 200000000001/eu-west-1 from us-east-1 = 10m15s"
	if got := m.Explain(src, b); got != want {
		t.Errorf("Explain =\n%s\nwant\n%s", got, want)
	}
}

// TestModelOfRunningEmulator reads the model from a running emulator: its
// defaults are DefaultModel, and a changed quota or factor shows.
func TestModelOfRunningEmulator(t *testing.T) {
	read := func(opts awsemu.Options) Model {
		t.Helper()
		srv := emutest.Start(t, opts)
		resp, err := http.Get(srv.URL() + "/_emu/model")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		m, err := ModelOf(data)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	if got, want := read(awsemu.Options{}), DefaultModel(); !reflect.DeepEqual(got, want) {
		t.Fatalf("default emulator model %+v, want %+v", got, want)
	}
	got := read(awsemu.Options{CrossRegionFactor: 2, Limits: awsemu.Limits{ConcurrentImageCopies: 7}})
	if got.CrossRegionFactor != 2 || got.ImageCopyQuota != 7 {
		t.Fatalf("model %+v, want factor 2 and quota 7", got)
	}
	if _, err := ModelOf([]byte(`{"time_scale":1}`)); err == nil || !strings.Contains(err.Error(), "lacks") {
		t.Fatalf("incomplete model accepted: %v", err)
	}
}
