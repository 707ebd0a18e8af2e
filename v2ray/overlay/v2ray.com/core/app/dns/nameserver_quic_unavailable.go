// Stands in for upstream's nameserver_quic.go (DNS over QUIC, "quic+local://"), which needs
// quic-go: see transport/internet/quic in this overlay. A configuration naming such a server
// is refused when v2ray starts.

package dns

import "net/url"

func NewQUICNameServer(*url.URL) (Server, error) {
	return nil, newError("DNS over QUIC is not available in this build: gccgo-12 cannot compile quic-go")
}
