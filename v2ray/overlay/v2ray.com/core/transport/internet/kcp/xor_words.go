// Replaces upstream's xor_amd64.go/xor_amd64.s: gccgo hands Go assembly to GNU as, which
// cannot read it. Same result as the assembly on the whole 4-byte words the callers pass
// (SimpleAuthenticator pads to a multiple of 4), so mKCP peers built with gc interoperate.

package kcp

import "encoding/binary"

// xorfwd chains 32-bit words from the front: each word is XORed with the one before it,
// already chained.
func xorfwd(x []byte) {
	for i := 4; i+4 <= len(x); i += 4 {
		w := binary.LittleEndian.Uint32(x[i:]) ^ binary.LittleEndian.Uint32(x[i-4:])
		binary.LittleEndian.PutUint32(x[i:], w)
	}
}

// xorbkd undoes xorfwd: from the back, each word is XORed with the (still chained) one
// before it.
func xorbkd(x []byte) {
	for i := len(x) &^ 3; i >= 8; i -= 4 {
		w := binary.LittleEndian.Uint32(x[i-4:]) ^ binary.LittleEndian.Uint32(x[i-8:])
		binary.LittleEndian.PutUint32(x[i-4:], w)
	}
}
