// Replaces upstream's hub_linux.go. Upstream reads each datagram with net.UDPConn.ReadMsgUDP,
// which in gccgo-12's runtime library (as syscall.Recvmsg under it) returns the sender as
// [::]:0: every UDP inbound (mKCP, Shadowsocks and dokodemo-door UDP) then answers nobody.
// Here recvmsg(2) is made directly and the sender read from the address it fills in.

package udp

import (
	"encoding/binary"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
	"v2ray.com/core/common/net"
)

// RetrieveOriginalDest is the destination a transparent proxy's packet was sent to, from the
// IP_RECVORIGDSTADDR / IPV6_RECVORIGDSTADDR control message (a sockaddr_in / sockaddr_in6).
func RetrieveOriginalDest(oob []byte) net.Destination {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return net.Destination{}
	}
	for _, m := range msgs {
		switch {
		case m.Header.Level == syscall.SOL_IP && m.Header.Type == syscall.IP_RECVORIGDSTADDR && len(m.Data) >= 8:
			return net.UDPDestination(net.IPAddress(m.Data[4:8]), net.PortFromBytes(m.Data[2:4]))
		case m.Header.Level == syscall.SOL_IPV6 && m.Header.Type == unix.IPV6_RECVORIGDSTADDR && len(m.Data) >= 24:
			return net.UDPDestination(net.IPAddress(m.Data[8:24]), net.PortFromBytes(m.Data[2:4]))
		}
	}
	return net.Destination{}
}

// ReadUDPMsg reads one datagram into payload and its control messages into oob, as
// ReadMsgUDP does: bytes read, control bytes read, the message's flags, its sender.
func ReadUDPMsg(conn *net.UDPConn, payload []byte, oob []byte) (int, int, int, *net.UDPAddr, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return 0, 0, 0, nil, err
	}
	var (
		n, oobn, flags int
		from           *net.UDPAddr
		callErr        error
	)
	// Read waits for readability (and honours deadlines) while the function says EAGAIN.
	err = raw.Read(func(fd uintptr) bool {
		n, oobn, flags, from, callErr = recvmsg(fd, payload, oob)
		return callErr != syscall.EAGAIN
	})
	if err == nil {
		err = callErr
	}
	if err != nil {
		return 0, 0, 0, nil, err
	}
	return n, oobn, flags, from, nil
}

func recvmsg(fd uintptr, payload, oob []byte) (int, int, int, *net.UDPAddr, error) {
	var name syscall.RawSockaddrAny
	var iov syscall.Iovec
	var msg syscall.Msghdr
	msg.Name = (*byte)(unsafe.Pointer(&name))
	msg.Namelen = uint32(syscall.SizeofSockaddrAny)
	if len(payload) > 0 {
		iov.Base = &payload[0]
		iov.SetLen(len(payload))
		msg.Iov = &iov
		msg.Iovlen = 1
	}
	if len(oob) > 0 {
		msg.Control = &oob[0]
		msg.SetControllen(len(oob))
	}
	r, _, errno := syscall.Syscall(syscall.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&msg)), 0)
	if errno != 0 {
		return 0, 0, 0, nil, errno
	}
	return int(r), int(msg.Controllen), int(msg.Flags), sender(&name), nil
}

// sender is the UDP address in a sockaddr_in or sockaddr_in6 (port in network byte order).
func sender(name *syscall.RawSockaddrAny) *net.UDPAddr {
	switch name.Addr.Family {
	case syscall.AF_INET:
		sa := (*syscall.RawSockaddrInet4)(unsafe.Pointer(name))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		return &net.UDPAddr{IP: append(net.IP(nil), sa.Addr[:]...), Port: int(port)}
	case syscall.AF_INET6:
		sa := (*syscall.RawSockaddrInet6)(unsafe.Pointer(name))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		return &net.UDPAddr{IP: append(net.IP(nil), sa.Addr[:]...), Port: int(port)}
	}
	return &net.UDPAddr{}
}
