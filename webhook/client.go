package webhook

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrForbiddenTarget is returned when a target address is loopback, private,
// link-local, a cloud metadata address or otherwise not a public unicast address,
// and private targets are not allowed. It is found with errors.Is through the
// *url.Error and *net.OpError that wrap it.
var ErrForbiddenTarget = errors.New("webhook: forbidden target address")

// ErrInvalidURL is returned by CheckURL for a URL that cannot be a webhook target.
var ErrInvalidURL = errors.New("webhook: invalid URL")

// Options configure NewClientWith. The zero value is the production client.
type Options struct {
	// AllowPrivate lets deliveries reach any address (tests, development).
	AllowPrivate bool
	// DialTimeout bounds connecting to one address; 0 means 5 s.
	DialTimeout time.Duration
	// Timeout bounds a whole request, from dial to the end of the body; 0 means 15 s.
	Timeout time.Duration
	// Resolver looks up host names; nil means net.DefaultResolver.
	Resolver *net.Resolver
}

// NewClient returns the client for deliveries: it does not follow redirects (a 3xx
// is a failed attempt), keeps no cookies, and, unless allowPrivate, refuses
// forbidden addresses with ErrForbiddenTarget.
func NewClient(allowPrivate bool) *http.Client {
	return NewClientWith(Options{AllowPrivate: allowPrivate})
}

// NewClientWith is NewClient with every option.
func NewClientWith(o Options) *http.Client {
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 15 * time.Second
	}
	d := &net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second, Resolver: o.Resolver}
	if !o.AllowPrivate {
		// The check runs on the address actually dialled, after DNS, so a name
		// that resolves (or re-resolves) to a private address is still refused.
		d.Control = refuseForbidden
	}
	return &http.Client{
		Transport: &http.Transport{
			// No proxy: the dial check would see the proxy's address, not the target's.
			Proxy:                  nil,
			DialContext:            d.DialContext,
			ForceAttemptHTTP2:      true,
			MaxIdleConns:           1024,
			MaxIdleConnsPerHost:    256, // ~2,000 deliveries/s to one host reuse connections
			IdleConnTimeout:        90 * time.Second,
			TLSHandshakeTimeout:    10 * time.Second,
			MaxResponseHeaderBytes: 64 << 10,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			// Following a redirect would let a public URL point us at a private one,
			// and Standard Webhooks counts only a 2xx as delivered.
			return http.ErrUseLastResponse
		},
		Timeout: o.Timeout,
	}
}

// refuseForbidden is a net.Dialer.Control: it sees the resolved "ip:port".
func refuseForbidden(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%w: %q", ErrForbiddenTarget, address)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || forbidden(ip) {
		return fmt.Errorf("%w: %s", ErrForbiddenTarget, host)
	}
	return nil
}

// forbiddenPrefixes are the ranges no webhook may reach unless private targets
// are allowed. IPv4-mapped IPv6 addresses are unmapped before the check.
var forbiddenPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),      // "this network", including 0.0.0.0
	netip.MustParsePrefix("10.0.0.0/8"),     // private
	netip.MustParsePrefix("100.64.0.0/10"),  // carrier-grade NAT (also Alibaba's metadata 100.100.100.200)
	netip.MustParsePrefix("127.0.0.0/8"),    // loopback
	netip.MustParsePrefix("169.254.0.0/16"), // link-local, including metadata 169.254.169.254
	netip.MustParsePrefix("172.16.0.0/12"),  // private
	netip.MustParsePrefix("192.168.0.0/16"), // private
	netip.MustParsePrefix("224.0.0.0/4"),    // multicast
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved, including broadcast 255.255.255.255
	netip.MustParsePrefix("::/128"),         // unspecified
	netip.MustParsePrefix("::1/128"),        // loopback
	netip.MustParsePrefix("fc00::/7"),       // unique local, including AWS metadata fd00:ec2::254
	netip.MustParsePrefix("fe80::/10"),      // link-local
	netip.MustParsePrefix("ff00::/8"),       // multicast
}

// nat64 is the well-known NAT64 prefix: its last 32 bits are an IPv4 address,
// which a NAT64 gateway would reach for us.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// forbidden reports whether ip may not be a webhook target.
func forbidden(ip netip.Addr) bool {
	if !ip.IsValid() {
		return true
	}
	ip = ip.WithZone("").Unmap() // Prefix.Contains is false for any zoned address
	if nat64.Contains(ip) {
		b := ip.As16()
		ip = netip.AddrFrom4([4]byte(b[12:]))
	}
	for _, p := range forbiddenPrefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// CheckURL validates a webhook target before it is stored: an absolute http or
// https URL with a host and no user-info. insecure is true for http. Unless
// allowPrivate, a host that is a forbidden IP literal or "localhost" is refused
// with ErrForbiddenTarget; names are otherwise checked when dialled, since what
// they resolve to can change.
func CheckURL(raw string, allowPrivate bool) (insecure bool, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrInvalidURL, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return false, fmt.Errorf("%w: scheme must be http or https", ErrInvalidURL)
	case u.Opaque != "" || u.Hostname() == "":
		return false, fmt.Errorf("%w: no host", ErrInvalidURL)
	case u.User != nil:
		return false, fmt.Errorf("%w: user-info is not allowed", ErrInvalidURL)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return false, fmt.Errorf("%w: bad port %q", ErrInvalidURL, p)
		}
	}
	if !allowPrivate {
		host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
		if ip, err := netip.ParseAddr(host); (err == nil && forbidden(ip)) ||
			host == "localhost" || strings.HasSuffix(host, ".localhost") {
			return false, fmt.Errorf("%w: %s", ErrForbiddenTarget, host)
		}
	}
	return u.Scheme == "http", nil
}
