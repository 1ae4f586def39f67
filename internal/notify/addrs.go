package notify

import (
	"fmt"
	"net/netip"
	"syscall"
)

// specialPurpose lists every range of the IANA IPv4 and IPv6 Special-Purpose
// Address Registries (as of 2025), plus multicast and the ranges a push
// service can never be in. A push endpoint resolving into any of them is
// refused: it could make the server call its own network (a cloud
// metadata service at 100.100.100.200 or 169.254.169.254, a NAT64 gateway
// to a private IPv4, a 6to4 or Teredo relay).
var specialPurpose = []struct {
	prefix netip.Prefix
	name   string
}{
	// IPv4 (RFC 6890 and updates).
	{netip.MustParsePrefix("0.0.0.0/8"), "this network"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private use"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared address space (carrier-grade NAT, some cloud metadata)"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link local"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private use"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation (TEST-NET-1)"},
	{netip.MustParsePrefix("192.31.196.0/24"), "AS112-v4"},
	{netip.MustParsePrefix("192.52.193.0/24"), "AMT"},
	{netip.MustParsePrefix("192.88.99.0/24"), "6to4 relay anycast (deprecated)"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private use"},
	{netip.MustParsePrefix("192.175.48.0/24"), "direct delegation AS112 service"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation (TEST-NET-2)"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation (TEST-NET-3)"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved (and limited broadcast)"},
	// IPv6 (RFC 6890 and updates). Anything outside 2000::/3, the global
	// unicast space, is refused below as well.
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("::ffff:0:0/96"), "IPv4-mapped"},
	{netip.MustParsePrefix("64:ff9b::/96"), "IPv4-IPv6 translation (NAT64)"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use IPv4-IPv6 translation"},
	{netip.MustParsePrefix("100::/64"), "discard only"},
	{netip.MustParsePrefix("100:0:0:1::/64"), "dummy IPv6 prefix"},
	{netip.MustParsePrefix("2001::/23"), "IETF protocol assignments"},
	{netip.MustParsePrefix("2001::/32"), "Teredo"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("2002::/16"), "6to4"},
	{netip.MustParsePrefix("2620:4f:8000::/48"), "direct delegation AS112 service"},
	{netip.MustParsePrefix("3fff::/20"), "documentation"},
	{netip.MustParsePrefix("5f00::/16"), "segment routing (SRv6) SIDs"},
	{netip.MustParsePrefix("fc00::/7"), "unique local"},
	{netip.MustParsePrefix("fe80::/10"), "link-local unicast"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

var globalUnicast6 = netip.MustParsePrefix("2000::/3")

// specialRange names the special-purpose range a holds, or "" when a is an
// ordinary public address. IPv4-mapped IPv6 addresses are judged as IPv4.
func specialRange(a netip.Addr) string {
	a = a.Unmap().WithZone("")
	for _, sp := range specialPurpose {
		if sp.prefix.Contains(a) {
			return sp.name
		}
	}
	if a.Is6() && !globalUnicast6.Contains(a) {
		return "outside IPv6 global unicast"
	}
	return ""
}

// refusePrivateAddresses keeps pushes off every special-purpose address, so
// a subscription cannot make the server call internal services. It is a
// net.Dialer Control function: it checks the address actually dialled,
// after DNS, so a name that resolves (or re-resolves) inward is caught.
func refusePrivateAddresses(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("push endpoint address %s: %w", address, err)
	}
	if why := specialRange(ap.Addr()); why != "" {
		return fmt.Errorf("push endpoint address %s is not public (%s): %w", ap.Addr(), why, ErrPushRejected)
	}
	return nil
}
