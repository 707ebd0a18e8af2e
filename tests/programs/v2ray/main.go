// v2ray-lkl: a v2ray (4.34, Debian's golang-v2ray-core-dev) built with gccgo-12, whose runtime
// calls glibc's socket functions, so liblkl_hijack.so can move its listeners onto LKL.
//
// Only the parts gccgo-12 compiles are linked (see scripts/build-v2ray.sh), and the core.Config
// is built here from flags: v2ray's JSON loader imports every transport, some of which do not
// compile.
//
//	v2ray-lkl -listen 0.0.0.0:1080 -to 10.0.0.1:8080
//	    dokodemo-door on -listen forwards each TCP connection to -to through freedom.
//	v2ray-lkl -vmess-listen 0.0.0.0:10086 -vmess-id UUID
//	    a VMess (AEAD, alterId 0) server whose clients' connections leave through freedom.
//
// Both inbounds may be given at once. It runs until SIGINT or SIGTERM.
//
// libgo makes some socket calls through syscall(2) (internal/poll.FD.Writev, and v2ray's
// common/buf reads with readv through syscall.Syscall): the library hooks syscall(2) too, so
// v2ray's vector I/O fast paths run on LKL sockets unchanged.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"v2ray.com/core"
	"v2ray.com/core/app/dispatcher"
	applog "v2ray.com/core/app/log"
	"v2ray.com/core/app/proxyman"
	_ "v2ray.com/core/app/proxyman/inbound"
	_ "v2ray.com/core/app/proxyman/outbound"
	clog "v2ray.com/core/common/log"
	"v2ray.com/core/common/net"
	"v2ray.com/core/common/protocol"
	"v2ray.com/core/common/serial"
	"v2ray.com/core/common/uuid"
	"v2ray.com/core/proxy/dokodemo"
	"v2ray.com/core/proxy/freedom"
	"v2ray.com/core/proxy/vmess"
	vmessin "v2ray.com/core/proxy/vmess/inbound"
	_ "v2ray.com/core/transport/internet/tcp"
)

func main() {
	listen := flag.String("listen", "", "dokodemo-door inbound address `host:port`")
	to := flag.String("to", "", "fixed destination `host:port` of the dokodemo-door inbound")
	vmessListen := flag.String("vmess-listen", "", "VMess inbound address `host:port`")
	vmessID := flag.String("vmess-id", "", "the VMess user's `uuid`")
	logLevel := flag.String("loglevel", "warning", "debug, info, warning, error or none")
	flag.Parse()

	config, err := buildConfig(*listen, *to, *vmessListen, *vmessID, *logLevel)
	if err != nil {
		fmt.Fprintf(os.Stderr, "v2ray-lkl: %v\n", err)
		os.Exit(2)
	}
	server, err := core.New(config)
	if err != nil {
		fmt.Fprintf(os.Stderr, "v2ray-lkl: configuration rejected: %v\n", err)
		os.Exit(1)
	}
	if err := server.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "v2ray-lkl: cannot start: %v\n", err)
		os.Exit(1)
	}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	server.Close()
}

func buildConfig(listen, to, vmessListen, vmessID, logLevel string) (*core.Config, error) {
	if listen == "" && vmessListen == "" {
		return nil, fmt.Errorf("nothing to serve: give -listen and -to, or -vmess-listen and -vmess-id")
	}
	severity, err := parseLogLevel(logLevel)
	if err != nil {
		return nil, err
	}
	logConfig := &applog.Config{ErrorLogType: applog.LogType_Console, ErrorLogLevel: severity}
	if logLevel == "none" {
		logConfig.ErrorLogType = applog.LogType_None
	}
	config := &core.Config{
		// After the log: the three features every instance needs, which the JSON loader
		// would add by itself.
		App: []*serial.TypedMessage{
			serial.ToTypedMessage(logConfig),
			serial.ToTypedMessage(&dispatcher.Config{}),
			serial.ToTypedMessage(&proxyman.InboundConfig{}),
			serial.ToTypedMessage(&proxyman.OutboundConfig{}),
		},
		Outbound: []*core.OutboundHandlerConfig{
			{Tag: "direct", ProxySettings: serial.ToTypedMessage(&freedom.Config{})},
		},
	}

	if listen != "" {
		if to == "" {
			return nil, fmt.Errorf("-listen needs -to")
		}
		receiver, err := receiverAt(listen)
		if err != nil {
			return nil, fmt.Errorf("-listen: %v", err)
		}
		dest, err := net.ParseDestination("tcp:" + to)
		if err != nil {
			return nil, fmt.Errorf("-to %q: %v", to, err)
		}
		config.Inbound = append(config.Inbound, &core.InboundHandlerConfig{
			Tag:              "dokodemo",
			ReceiverSettings: receiver,
			ProxySettings: serial.ToTypedMessage(&dokodemo.Config{
				Address:  net.NewIPOrDomain(dest.Address),
				Port:     uint32(dest.Port),
				Networks: []net.Network{net.Network_TCP},
			}),
		})
	}

	if vmessListen != "" {
		id, err := uuid.ParseString(vmessID)
		if err != nil {
			return nil, fmt.Errorf("-vmess-id %q: %v", vmessID, err)
		}
		receiver, err := receiverAt(vmessListen)
		if err != nil {
			return nil, fmt.Errorf("-vmess-listen: %v", err)
		}
		config.Inbound = append(config.Inbound, &core.InboundHandlerConfig{
			Tag:              "vmess",
			ReceiverSettings: receiver,
			ProxySettings: serial.ToTypedMessage(&vmessin.Config{
				User: []*protocol.User{{
					Email:   "lkl@v2ray",
					Account: serial.ToTypedMessage(&vmess.Account{Id: id.String()}),
				}},
			}),
		})
	}
	return config, nil
}

// receiverAt is the proxyman receiver (a TCP listener) for `host:port`.
func receiverAt(hostPort string) (*serial.TypedMessage, error) {
	host, portText, err := net.SplitHostPort(hostPort)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil || port == 0 {
		return nil, fmt.Errorf("bad port %q", portText)
	}
	return serial.ToTypedMessage(&proxyman.ReceiverConfig{
		PortRange: net.SinglePortRange(net.Port(port)),
		Listen:    net.NewIPOrDomain(net.ParseAddress(host)),
	}), nil
}

func parseLogLevel(level string) (clog.Severity, error) {
	switch level {
	case "debug":
		return clog.Severity_Debug, nil
	case "info":
		return clog.Severity_Info, nil
	case "warning":
		return clog.Severity_Warning, nil
	case "error", "none":
		return clog.Severity_Error, nil
	}
	return 0, fmt.Errorf("-loglevel %q: want debug, info, warning, error or none", level)
}
