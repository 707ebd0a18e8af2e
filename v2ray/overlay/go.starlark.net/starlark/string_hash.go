// hashtable.go binds runtime.stringHash, gc's string hash, with //go:linkname; gccgo's runtime
// has no such function and the link fails. This defines it for the package: FNV-1a over the
// string, seeded, as hashtable.go's own softHashString does for short strings.

package starlark

import _ "unsafe" // for go:linkname

//go:linkname stringHash runtime.stringHash
func stringHash(s string, seed uintptr) uintptr {
	h := uint64(14695981039346656037) ^ uint64(seed)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return uintptr(h)
}
