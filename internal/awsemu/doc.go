// Package awsemu is a local AWS (EC2/EBS, KMS, STS, IAM, instance metadata)
// for amicrypt's tests, benchmarks and demo. It serves the real wire
// protocols on one endpoint, across many accounts and regions, and follows
// the AWS behaviour documented in docs/aws-behaviour.md. The Emulator ties
// the per-service packages together: the HTTP server, dispatch, the state
// file and the admin endpoint live here.
package awsemu
