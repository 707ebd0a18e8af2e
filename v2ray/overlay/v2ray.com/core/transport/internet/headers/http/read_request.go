// Replaces upstream's linkedreadRequest.go, which binds net/http's unexported readRequest with
// //go:linkname: gccgo turns that into a symbol difference GNU as rejects. The exported
// http.ReadRequest parses the same way; it only drops the Host header from req.Header
// (req.Host keeps it), which is put back when the caller asks for it.

package http

import (
	"bufio"
	"net/http"
)

func readRequest(b *bufio.Reader, deleteHostHeader bool) (*http.Request, error) {
	req, err := http.ReadRequest(b)
	if err != nil {
		return nil, err
	}
	if !deleteHostHeader && req.Host != "" {
		req.Header.Set("Host", req.Host)
	}
	return req, nil
}
