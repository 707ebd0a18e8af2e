// Stands in for upstream's QUIC transport, which needs quic-go: gccgo-12 cannot compile it
// (its TLS fork for Go 1.18 is not packaged, and golang.org/x/exp/constraints is generic).
// The package keeps the transport's name and its Config message (upstream's config.pb.go),
// so every configuration loads; an inbound on QUIC stops v2ray at start, an outbound on QUIC
// fails each connection, both with the one line below.

package quic

import (
	"context"
	"errors"

	"v2ray.com/core/common"
	"v2ray.com/core/common/net"
	"v2ray.com/core/transport/internet"
)

const protocolName = "quic"

// Unavailable is the error of every use of the transport.
var Unavailable = errors.New("QUIC transport is not available in this build: gccgo-12 cannot compile quic-go")

func init() {
	common.Must(internet.RegisterProtocolConfigCreator(protocolName, func() interface{} {
		return new(Config)
	}))
	common.Must(internet.RegisterTransportListener(protocolName, func(context.Context, net.Address, net.Port, *internet.MemoryStreamConfig, internet.ConnHandler) (internet.Listener, error) {
		return nil, Unavailable
	}))
	common.Must(internet.RegisterTransportDialer(protocolName, func(context.Context, net.Destination, *internet.MemoryStreamConfig) (internet.Connection, error) {
		return nil, Unavailable
	}))
}
