// Package bench holds amicrypt's benchmarks: HashiCorp's amazon-ebs against
// amicrypt-ebs side by side on the local emulator, and the emulator's own.
package bench

// The amazon-ebs side-by-side benchmark runs the real Packer binary and so
// needs the e2e harness: its files carry the build tag e2e. This file keeps
// the package buildable without that tag. See README.md.
