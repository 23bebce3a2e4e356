//! DNS packets copied by the `cgroup_skb` hooks → `dns_query` / `dns_response` rows.
//!
//! The message is parsed here with `needle_common::dns` (bounded, safe on malformed input). The
//! row's kind follows the message's QR bit, not the direction it was seen in.

use needle_common::abi::{AF_INET6, DNS_FIXED, DNS_PAYLOAD_MAX, DnsEvent};
use needle_common::dns::{self, RData, Transport};
use needle_common::schema::{Detail, Dns, Net};

use super::network::protocol_name;
use super::{DecodeError, Decoded, Decoder, Role, ip_from_bytes, pod_prefix};

pub(super) fn dns(d: &mut Decoder, bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let (ev, n): (DnsEvent, usize) = pod_prefix(bytes, DNS_FIXED, "dns")?;
    let captured = (ev.captured as usize)
        .min(DNS_PAYLOAD_MAX)
        .min(n - DNS_FIXED);
    let transport = if ev.protocol == 6 {
        Transport::Tcp
    } else {
        Transport::Udp
    };
    let msg = dns::parse(&ev.payload[..captured], transport)
        .map_err(|e| DecodeError::Dns(e.to_string()))?;
    let question = msg.questions.first();
    let answers = msg
        .answers
        .iter()
        .filter_map(|a| match &a.data {
            RData::A(ip) => Some(ip.to_string()),
            RData::Aaaa(ip) => Some(ip.to_string()),
            _ => None,
        })
        .collect();
    let net = Net {
        family: if ev.family == AF_INET6 {
            "inet6"
        } else {
            "inet"
        }
        .into(),
        protocol: protocol_name(u32::from(ev.protocol)),
        src_addr: ip_from_bytes(ev.family, &ev.src_addr).map(|ip| d.ip_text(ip)),
        src_port: Some(ev.src_port),
        dst_addr: ip_from_bytes(ev.family, &ev.dst_addr).map(|ip| d.ip_text(ip)),
        dst_port: Some(ev.dst_port),
        bytes: Some(u64::from(ev.payload_len)),
        ret: None,
        count: None,
    };
    let record = Dns {
        name: question.map(|q| q.name.clone()).unwrap_or_default(),
        qtype: question.map_or(0, |q| q.qtype),
        id: msg.id,
        rcode: msg.response.then_some(msg.rcode),
        answers,
        net,
    };
    let detail = if msg.response {
        Detail::DnsResponse(Box::new(record))
    } else {
        Detail::DnsQuery(Box::new(record))
    };
    let mut decoded = d.decoded(&ev.header, detail);
    if let Some(index) = ev.window.checked_sub(1) {
        decoded.role = Role::Window(index);
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::tests::header;
    use crate::kernel::clock::BootClock;
    use bytemuck::Zeroable;
    use needle_common::abi::{AF_INET, EventKind};

    /// A real query for example.com (A), as `busybox nslookup` sends it.
    const QUERY: &[u8] = &[
        0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 7, b'e', b'x',
        b'a', b'm', b'p', b'l', b'e', 3, b'c', b'o', b'm', 0, 0x00, 0x01, 0x00, 0x01,
    ];

    fn record(kind: EventKind, payload: &[u8]) -> Vec<u8> {
        let mut ev = DnsEvent::zeroed();
        ev.header = header(kind);
        ev.family = AF_INET;
        ev.protocol = 17;
        ev.src_port = 40000;
        ev.dst_port = 53;
        ev.src_addr[..4].copy_from_slice(&[127, 0, 0, 1]);
        ev.dst_addr[..4].copy_from_slice(&[127, 0, 0, 53]);
        ev.payload_len = payload.len() as u32;
        ev.captured = payload.len() as u32;
        ev.payload[..payload.len()].copy_from_slice(payload);
        bytemuck::bytes_of(&ev)[..DNS_FIXED + payload.len()].to_vec()
    }

    #[test]
    fn queries_and_responses_decode() {
        let mut d = Decoder::new(BootClock::measure());
        let e = d.decode(&record(EventKind::DnsQuery, QUERY)).unwrap().event;
        let Detail::DnsQuery(q) = e.detail else {
            panic!("query")
        };
        assert_eq!(
            (q.name.as_str(), q.qtype, q.id, q.rcode),
            ("example.com", 1, 0x1234, None)
        );
        assert_eq!(
            (
                q.net.dst_addr.as_deref(),
                q.net.dst_port,
                q.net.protocol.as_ref()
            ),
            (Some("127.0.0.53"), Some(53), "udp")
        );

        // The same message answered: QR set, one A record via a compression pointer.
        let mut resp = QUERY.to_vec();
        resp[2] = 0x81;
        resp[3] = 0x80;
        resp[7] = 1;
        resp.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 9]);
        let e = d
            .decode(&record(EventKind::DnsResponse, &resp))
            .unwrap()
            .event;
        let Detail::DnsResponse(r) = e.detail else {
            panic!("response")
        };
        assert_eq!(
            (r.name.as_str(), r.rcode, r.answers.clone()),
            ("example.com", Some(0), vec!["127.0.0.9".to_string()])
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut d = Decoder::new(BootClock::measure());
        assert!(matches!(
            d.decode(&record(EventKind::DnsQuery, &[1, 2, 3])),
            Err(DecodeError::Dns(_))
        ));
        let short = record(EventKind::DnsQuery, QUERY);
        assert!(matches!(
            d.decode(&short[..DNS_FIXED - 1]),
            Err(DecodeError::Short { what: "dns", .. })
        ));
    }
}
