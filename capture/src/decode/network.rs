//! Network records.

use std::borrow::Cow;

use needle_common::abi::{AF_INET, AF_INET6, EventKind, NetEvent};
use needle_common::schema::{Detail, Net};

use super::{DecodeError, Decoded, Decoder, Role, ip_from_bytes, pod};

/// Name of an IP protocol number, as the schema spells it (the common ones without an
/// allocation).
pub fn protocol_name(p: u32) -> Cow<'static, str> {
    match p {
        6 => "tcp".into(),
        17 => "udp".into(),
        1 => "icmp".into(),
        58 => "icmpv6".into(),
        255 | 0 => "raw".into(),
        other => other.to_string().into(),
    }
}

pub(super) fn net(d: &mut Decoder, bytes: &[u8], kind: EventKind) -> Result<Decoded, DecodeError> {
    let ev: NetEvent = pod(bytes, "net")?;
    let family = match ev.family {
        AF_INET => "inet",
        AF_INET6 => "inet6",
        _ => "unknown",
    };
    let addr = ip_from_bytes(ev.family, &ev.dst_addr).map(|ip| d.ip_text(ip));
    let net = Net {
        family: family.into(),
        protocol: protocol_name(ev.protocol),
        src_addr: None,
        src_port: None,
        dst_addr: addr,
        dst_port: Some(ev.dst_port),
        bytes: None,
        // The hook runs before the kernel performs the connect: no result yet.
        ret: None,
        count: None,
    };
    let detail = match kind {
        EventKind::SendTo => Detail::SendTo(Box::new(net)),
        _ => Detail::Connect(Box::new(net)),
    };
    let mut decoded = d.decoded(&ev.header, detail);
    if let Some(index) = ev.window.checked_sub(1) {
        decoded.role = Role::Window(index);
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use super::*;
    use crate::decode::tests::header;
    use crate::kernel::clock::BootClock;
    use bytemuck::Zeroable;

    #[test]
    fn ipv4_and_ipv6_destinations() {
        let mut d = Decoder::new(BootClock::measure());
        let mut ev = NetEvent::zeroed();
        ev.header = header(EventKind::Connect);
        ev.family = AF_INET;
        ev.protocol = 6;
        ev.dst_port = 3333;
        ev.dst_addr[..4].copy_from_slice(&[127, 0, 0, 9]);
        let e = d.decode(bytemuck::bytes_of(&ev)).unwrap().event;
        let Detail::Connect(n) = e.detail else {
            panic!("connect")
        };
        assert_eq!(
            (
                n.family.as_ref(),
                n.protocol.as_ref(),
                n.dst_addr.as_deref(),
                n.dst_port
            ),
            ("inet", "tcp", Some("127.0.0.9"), Some(3333))
        );

        ev.header = header(EventKind::SendTo);
        ev.family = AF_INET6;
        ev.protocol = 17;
        ev.dst_port = 53;
        ev.dst_addr = Ipv6Addr::LOCALHOST.octets();
        let e = d.decode(bytemuck::bytes_of(&ev)).unwrap().event;
        let Detail::SendTo(n) = e.detail else {
            panic!("sendto")
        };
        assert_eq!(
            (
                n.family.as_ref(),
                n.protocol.as_ref(),
                n.dst_addr.as_deref(),
                n.dst_port
            ),
            ("inet6", "udp", Some("::1"), Some(53))
        );
    }
}
