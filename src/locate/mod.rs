//! Where the requester is: mTLS peer → `[[network]]` CIDR → GeoIP country →
//! unknown (DESIGN §2 phase 2), and which address is the client's.

pub mod forwarded;
pub mod geoip;

#[cfg(test)]
mod tests;

use std::net::{IpAddr, SocketAddr};
use std::ops::ControlFlow;

use http::header::HeaderMap;
use ipnet::IpNet;

use crate::rules::model::{Country, Jurisdiction, PeerId, RegionId, RuleSet};
use geoip::GeoIp;

/// How a location was found; `Bucket` and `Instance` are the storage side of
/// a transfer (a bucket's own region, or the instance's region for a bucket
/// that names none).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Via {
    Peer,
    Network,
    Geoip,
    Bucket,
    Instance,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Peer => "peer",
            Via::Network => "network",
            Via::Geoip => "geoip",
            Via::Bucket => "bucket",
            Via::Instance => "instance",
        }
    }
}

/// One end of a transfer. An unknown requester has every field `None`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Location {
    pub region: Option<RegionId>,
    pub country: Option<Country>,
    pub jurisdiction: Option<Jurisdiction>,
    pub via: Option<Via>,
    pub peer: Option<PeerId>,
}

impl Location {
    pub const UNKNOWN: Location = Location {
        region: None,
        country: None,
        jurisdiction: None,
        via: None,
        peer: None,
    };
}

/// Which proxies are believed about the client's address, and which header
/// they write it in.
#[derive(Clone, Copy, Debug)]
pub struct Proxies<'a> {
    pub trusted: &'a [IpNet],
    pub header: ForwardedHeader,
}

/// The one header the trusted proxies write the client's address in. Only
/// that one is read; the other is ignored as a client could have sent it:
/// a proxy passes on a header it does not write, so reading whichever is
/// present, or the one that wins when both are, would let a client forge its
/// address with the header its proxy leaves alone.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum ForwardedHeader {
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded`, its `for=` parameters.
    Forwarded,
}

impl ForwardedHeader {
    pub fn name(self) -> &'static str {
        match self {
            ForwardedHeader::XForwardedFor => "x-forwarded-for",
            ForwardedHeader::Forwarded => "forwarded",
        }
    }
}

/// The client's address: the TCP peer, or — only when the TCP peer is a
/// trusted proxy — the right-most hop of the proxies' header
/// (`X-Forwarded-For`, or `Forwarded` as configured) that is not a trusted
/// proxy. All lines of the header count, joined in order, as RFC 9110 joins
/// repeated list headers.
///
/// Hops are read right to left because each trusted proxy appends the
/// address it received the connection from; everything left of the first
/// untrusted hop was written by someone unaccountable and proves nothing.
///
/// A hop that names no address (malformed, empty, not UTF-8; in `Forwarded`
/// also `for=unknown`, an obfuscated `for=_name`, or an element without
/// `for=`) stops the walk, and the last trusted hop is the answer. The
/// entry was written or passed on by that trusted proxy, so the client
/// behind it is unknowable; walking past it to an entry further left would
/// let a client pick its own location by sending garbage after a forged
/// address. The proxy's own address is the one thing known for sure, and it
/// usually locates nowhere a restricted transfer is allowed to, which fails
/// closed.
///
/// IPv4-mapped IPv6 addresses are normalised to IPv4 throughout, so they
/// match IPv4 proxy ranges, networks and GeoIP entries.
pub fn client_ip_via(peer: IpAddr, headers: &HeaderMap, proxies: Proxies<'_>) -> IpAddr {
    let trusted = |ip: &IpAddr| proxies.trusted.iter().any(|net| net.contains(ip));
    let mut hop = peer.to_canonical();
    if !trusted(&hop) {
        return hop;
    }
    for line in headers.get_all(proxies.header.name()).iter().rev() {
        let Ok(line) = line.to_str() else { return hop };
        let walked = match proxies.header {
            ForwardedHeader::XForwardedFor => {
                walk(&mut hop, line.rsplit(',').map(forwarded_for), trusted)
            }
            ForwardedHeader::Forwarded => walk(
                &mut hop,
                forwarded::elements_rev(line).map(forwarded::client),
                trusted,
            ),
        };
        if walked.is_break() {
            return hop;
        }
    }
    hop
}

/// [`client_ip_via`] with proxies that write `X-Forwarded-For`, the default.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[IpNet]) -> IpAddr {
    let proxies = Proxies {
        trusted: trusted_proxies,
        header: ForwardedHeader::XForwardedFor,
    };
    client_ip_via(peer, headers, proxies)
}

/// Moves `hop` leftwards over one line's hops (given right to left) while
/// they are trusted proxies; breaks at the client or at a hop that names no
/// address.
fn walk(
    hop: &mut IpAddr,
    hops: impl Iterator<Item = Option<IpAddr>>,
    trusted: impl Fn(&IpAddr) -> bool,
) -> ControlFlow<()> {
    for entry in hops {
        let Some(ip) = entry else {
            return ControlFlow::Break(());
        };
        *hop = ip;
        if !trusted(hop) {
            return ControlFlow::Break(());
        }
    }
    ControlFlow::Continue(())
}

/// One `X-Forwarded-For` entry: an address, or an address with a port as
/// some load balancers write it (`203.0.113.7:5123`, `[2001:db8::1]:443`).
fn forwarded_for(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let ip = entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|sa| sa.ip()))
        .ok()?;
    Some(ip.to_canonical())
}

/// Where the requester is (DESIGN §2 phase 2): an authenticated mTLS peer
/// is where its rule says; otherwise a `[[network]]` range, which operators
/// declare because they know better than GeoIP; otherwise the GeoIP
/// country; otherwise unknown.
pub fn locate(rules: &RuleSet, geoip: &GeoIp, peer: Option<PeerId>, ip: IpAddr) -> Location {
    if let Some(peer) = peer {
        return Location {
            peer: Some(peer),
            ..in_region(rules, rules.peer(peer).region, Via::Peer)
        };
    }
    if let Some(region) = rules.network_region(ip) {
        return in_region(rules, region, Via::Network);
    }
    match geoip.lookup(ip) {
        Some(country) => Location {
            region: None,
            country: Some(country),
            jurisdiction: Some(rules.jurisdiction_of(country)),
            via: Some(Via::Geoip),
            peer: None,
        },
        None => Location::UNKNOWN,
    }
}

/// A location known by its region; the region's country is not recorded
/// because a region belongs to a jurisdiction, not necessarily one country.
fn in_region(rules: &RuleSet, region: RegionId, via: Via) -> Location {
    Location {
        region: Some(region),
        country: None,
        jurisdiction: Some(rules.region(region).jurisdiction),
        via: Some(via),
        peer: None,
    }
}
