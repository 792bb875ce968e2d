package copy

import (
	"slices"
	"testing"
)

// TestLongestFirst: cross-region copies start before in-region ones, the
// larger source before the smaller, and the plan's own order is kept.
func TestLongestFirst(t *testing.T) {
	small := &source{Region: "us-east-1", SizeGiB: 8}
	large := &source{Region: "us-east-1", SizeGiB: 200}
	jobs := []*job{
		{Name: "in-small", Region: "us-east-1", Source: small},
		{Name: "cross-small", Region: "eu-west-1", Source: small},
		{Name: "in-large", Region: "us-east-1", Source: large},
		{Name: "cross-large", Region: "ap-southeast-2", Source: large},
		{Name: "cross-small-2", Region: "us-west-2", Source: small},
	}
	plan := slices.Clone(jobs)
	var got []string
	for _, j := range longestFirst(jobs) {
		got = append(got, j.Name)
	}
	want := []string{"cross-large", "cross-small", "cross-small-2", "in-large", "in-small"}
	if !slices.Equal(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
	if !slices.Equal(jobs, plan) {
		t.Error("longestFirst reordered the plan's own jobs")
	}
}
