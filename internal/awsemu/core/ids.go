package core

import (
	"fmt"
	"math/rand/v2"
	"sync"
)

// RequestIDs makes request IDs shaped like AWS's, from a seeded generator so
// runs are reproducible. Safe for concurrent use.
type RequestIDs struct {
	mu  sync.Mutex
	rng *rand.Rand
}

// NewRequestIDs seeds a generator.
func NewRequestIDs(seed uint64) *RequestIDs {
	return &RequestIDs{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Next returns a fresh request ID.
func (r *RequestIDs) Next() string {
	r.mu.Lock()
	hi, lo := r.rng.Uint64(), r.rng.Uint64()
	r.mu.Unlock()
	return fmt.Sprintf("%08x-%04x-4%03x-a%03x-%012x", uint32(hi>>32), uint16(hi>>16), uint16(hi)&0xfff, uint16(lo>>48)&0xfff, lo&0xffffffffffff)
}
