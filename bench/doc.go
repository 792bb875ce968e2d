// Package bench measures amicrypt on the local AWS emulator: building one
// encrypted AMI against HashiCorp's amazon-ebs (B1), fanning it out to many
// accounts and regions (B2), the same under request-rate throttling (B3), and
// the instance-store agent's boot times (B4, a hook), written to
// results/results.json, results/results.md and a chart; plus the emulator's
// own benchmarks. The scenarios run the real Packer binary through the e2e
// harness, so their files carry the build tag e2e. See README.md.
package bench
