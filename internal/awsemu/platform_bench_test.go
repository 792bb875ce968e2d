package awsemu_test

import (
	"context"
	"testing"

	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu"
	"github.com/amicrypt/packer-plugin-amicrypt/internal/awsemu/emutest"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// BenchmarkKMSDescribeKey measures signed KMS round trips through the HTTP
// server (SigV4 verification, dispatch, policy evaluation, audit).
func BenchmarkKMSDescribeKey(b *testing.B) {
	ctx := context.Background()
	srv := emutest.Start(b, awsemu.Options{})
	c := kms.NewFromConfig(srv.Config(ctx, "222222222222", "us-east-1"))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/amicrypt-target")}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkSTSGetCallerIdentity measures the Query-protocol path.
func BenchmarkSTSGetCallerIdentity(b *testing.B) {
	ctx := context.Background()
	srv := emutest.Start(b, awsemu.Options{})
	c := sts.NewFromConfig(srv.Config(ctx, "111111111111", "us-east-1"))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}
