// Package core is what every service of the local AWS emulator shares: the
// call being served and its errors, the world file, the clock and latency
// model, faults, request limits, the audit, SigV4, IDs and ARNs, the IAM
// policy language, and the Query and JSON wire codecs.
package core
