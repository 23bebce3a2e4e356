use super::*;

// Real packets from common/testdata/dns_fixtures.py: queries sent by `busybox nslookup`
// (BusyBox 1.35.0, Debian 12), answered by dnsmasq 2.89 (Debian 12 `dnsmasq-base`) serving
// web.needle.test = 10.1.2.3 / fd00::1234 and www.needle.test CNAME web.needle.test, with TTL 300,
// both on 127.0.0.1. Bytes copied as they crossed the sockets.
const A_QUERY: &str = "89e20100000100000000000003776562066e6565646c6504746573740000010001";
const A_RESPONSE: &str = "89e28580000100010000000003776562066e6565646c6504746573740000010001\
                          c00c000100010000012c00040a010203";
const AAAA_RESPONSE: &str = "d79a8580000100010000000003776562066e6565646c65047465737400001c0001\
                             c00c001c00010000012c0010fd000000000000000000000000001234";
const CNAME_RESPONSE: &str = "915f8580000100020000000003777777066e6565646c6504746573740000010001\
                              c00c000500010000012c001103776562066e6565646c65047465737400\
                              c02d000100010000012c00040a010203";
const NXDOMAIN_RESPONSE: &str =
    "e91181830001000000000000046e6f7065066e6565646c6504746573740000010001";
// The A query above sent to dnsmasq over TCP, and its reply, each with the length prefix.
const TCP_QUERY: &str = "002189e20100000100000000000003776562066e6565646c6504746573740000010001";
const TCP_RESPONSE: &str = "003189e28580000100010000000003776562066e6565646c6504746573740000010001\
                            c00c000100010000012c00040a010203";

fn hex(s: &str) -> Vec<u8> {
    let s: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    s.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

fn udp(s: &str) -> Result<Message, DnsError> {
    parse(&hex(s), Transport::Udp)
}

/// A response header (id 0x1234, QR RD RA) with the given counts, then `body`.
fn packet(qd: u16, an: u16, body: &[u8]) -> Vec<u8> {
    let mut p = vec![0x12, 0x34, 0x81, 0x80];
    for c in [qd, an, 0, 0] {
        p.extend(c.to_be_bytes());
    }
    p.extend(body);
    p
}

fn question(name: &str, qtype: u16) -> Question {
    Question {
        name: name.into(),
        qtype,
        qclass: 1,
    }
}

const WEB_A: Answer = Answer {
    name: String::new(),
    rtype: 1,
    ttl: 300,
    data: RData::A(Ipv4Addr::new(10, 1, 2, 3)),
};

fn web_a() -> Answer {
    Answer {
        name: "web.needle.test".into(),
        ..WEB_A
    }
}

#[test]
fn real_query() {
    let m = udp(A_QUERY).unwrap();
    assert_eq!(
        (m.id, m.response, m.opcode, m.rcode, m.truncated),
        (0x89e2, false, 0, 0, false)
    );
    assert_eq!(m.questions, [question("web.needle.test", 1)]);
    assert!(m.answers.is_empty());
}

#[test]
fn real_a_response() {
    let m = udp(A_RESPONSE).unwrap();
    assert_eq!(
        (m.id, m.response, m.opcode, m.rcode, m.truncated),
        (0x89e2, true, 0, 0, false)
    );
    assert_eq!(m.questions, [question("web.needle.test", 1)]);
    assert_eq!(m.answers, [web_a()]);
}

#[test]
fn real_aaaa_response() {
    let m = udp(AAAA_RESPONSE).unwrap();
    assert_eq!(m.questions, [question("web.needle.test", 28)]);
    let ip: Ipv6Addr = "fd00::1234".parse().unwrap();
    assert_eq!(
        m.answers,
        [Answer {
            name: "web.needle.test".into(),
            rtype: 28,
            ttl: 300,
            data: RData::Aaaa(ip)
        }]
    );
}

#[test]
fn real_cname_response() {
    let m = udp(CNAME_RESPONSE).unwrap();
    assert_eq!(m.questions, [question("www.needle.test", 1)]);
    let cname = Answer {
        name: "www.needle.test".into(),
        rtype: 5,
        ttl: 300,
        data: RData::Cname("web.needle.test".into()),
    };
    assert_eq!(m.answers, [cname, web_a()]);
}

#[test]
fn real_nxdomain() {
    let m = udp(NXDOMAIN_RESPONSE).unwrap();
    assert_eq!((m.id, m.response, m.rcode), (0xe911, true, 3));
    assert_eq!(m.questions, [question("nope.needle.test", 1)]);
    assert!(m.answers.is_empty());
}

#[test]
fn tcp_length_prefix() {
    let q = parse(&hex(TCP_QUERY), Transport::Tcp).unwrap();
    assert_eq!(q, udp(A_QUERY).unwrap());
    let r = parse(&hex(TCP_RESPONSE), Transport::Tcp).unwrap();
    assert_eq!(r, udp(A_RESPONSE).unwrap());
    // A second message in the same segment is not read as part of the first.
    let mut two = hex(TCP_QUERY);
    two.extend(hex(TCP_RESPONSE));
    assert_eq!(parse(&two, Transport::Tcp).unwrap(), q);
    // Without the prefix removed, the same bytes as UDP are garbage, not this message.
    assert_ne!(udp(TCP_RESPONSE).ok(), Some(r));
    assert!(matches!(
        parse(&[0x00], Transport::Tcp),
        Err(DnsError::Truncated {
            field: "TCP length prefix",
            ..
        })
    ));
}

/// Cutting a real response at every offset: an error while the header or first question is
/// incomplete, then the question and exactly the answers whose last byte is present.
#[test]
fn truncation_at_every_offset() {
    // (payload, transport, end of the first question, end of each answer), offsets in the payload.
    let cases = [
        (A_RESPONSE, Transport::Udp, 33, vec![49]),
        (AAAA_RESPONSE, Transport::Udp, 33, vec![61]),
        (CNAME_RESPONSE, Transport::Udp, 33, vec![62, 78]),
        (NXDOMAIN_RESPONSE, Transport::Udp, 34, vec![]),
        (TCP_RESPONSE, Transport::Tcp, 35, vec![51]),
    ];
    for (s, transport, q_end, ends) in cases {
        let full_bytes = hex(s);
        assert_eq!(full_bytes.len(), ends.last().copied().unwrap_or(q_end));
        let full = parse(&full_bytes, transport).unwrap();
        for n in 0..=full_bytes.len() {
            match parse(&full_bytes[..n], transport) {
                Err(DnsError::Truncated { .. }) if n < q_end => {}
                Ok(m) if n >= q_end => {
                    let k = ends.iter().filter(|&&e| e <= n).count();
                    assert_eq!(m.questions, full.questions, "cut at {n}");
                    assert_eq!(m.answers, full.answers[..k], "cut at {n}");
                    assert_eq!((m.id, m.rcode), (full.id, full.rcode));
                }
                other => panic!("{s} cut at {n}: {other:?}"),
            }
        }
    }
}

#[test]
fn later_question_cut_keeps_the_first() {
    let mut body = hex("03776562066e6565646c6504746573740000010001");
    body.extend(hex("03777777c010")); // second question cut after its name's first label
    let m = parse(&packet(2, 1, &body), Transport::Udp).unwrap();
    assert_eq!(m.questions, [question("web.needle.test", 1)]);
}

#[test]
fn compression_loops() {
    // A pointer to itself.
    let p = packet(1, 0, &[0xc0, 12, 0, 1, 0, 1]);
    assert_eq!(
        parse(&p, Transport::Udp),
        Err(DnsError::CompressionLoop {
            offset: 12,
            target: 12
        })
    );
    // A pointer back to the start of its own name.
    let p = packet(1, 0, &[1, b'a', 0xc0, 12, 0, 1, 0, 1]);
    assert_eq!(
        parse(&p, Transport::Udp),
        Err(DnsError::CompressionLoop {
            offset: 14,
            target: 12
        })
    );
    // Two pointers to each other: the first question's QTYPE (c0 13) is a pointer to the second
    // question's name, which points back at it.
    let p = packet(2, 0, &[1, b'a', 0, 0xc0, 19, 0, 1, 0xc0, 15, 0, 1, 0, 1]);
    assert_eq!(
        parse(&p, Transport::Udp),
        Err(DnsError::CompressionLoop {
            offset: 15,
            target: 19
        })
    );
    // The same, read directly: 12 -> 14 and 14 -> 12.
    let p = packet(0, 0, &[0xc0, 14, 0xc0, 12]);
    assert_eq!(
        read_name(&p, 14, "test"),
        Err(DnsError::CompressionLoop {
            offset: 12,
            target: 14
        })
    );
}

#[test]
fn bad_pointers() {
    // Forward, even to a valid name.
    let p = packet(1, 0, &[0xc0, 18, 0, 1, 0, 1, 1, b'a', 0]);
    assert_eq!(
        parse(&p, Transport::Udp),
        Err(DnsError::BadPointer {
            offset: 12,
            target: 18
        })
    );
    // Into the header.
    let p = packet(1, 0, &[0xc0, 4, 0, 1, 0, 1]);
    assert_eq!(
        parse(&p, Transport::Udp),
        Err(DnsError::BadPointer {
            offset: 12,
            target: 4
        })
    );
    // Past the end.
    let p = packet(1, 0, &[0xff, 0xff, 0, 1, 0, 1]);
    assert!(matches!(
        parse(&p, Transport::Udp),
        Err(DnsError::BadPointer { .. })
    ));
    // A backward chain is fine: question 2 -> question 1's "needle.test".
    let p = packet(
        2,
        0,
        &hex("03776562066e6565646c6504746573740000010001 03777777c010 00010001"),
    );
    let names: Vec<_> = parse(&p, Transport::Udp)
        .unwrap()
        .questions
        .into_iter()
        .map(|q| q.name)
        .collect();
    assert_eq!(names, ["web.needle.test", "www.needle.test"]);
}

#[test]
fn labels_over_63() {
    for len in [64u8, 0x7f, 0x80, 0xbf] {
        let mut body = vec![len];
        body.extend([b'a'; 200]);
        let p = packet(1, 0, &body);
        assert_eq!(
            parse(&p, Transport::Udp),
            Err(DnsError::LabelTooLong { offset: 12, len })
        );
    }
}

#[test]
fn name_length_limit() {
    let name = |labels: &[usize]| {
        let mut body: Vec<u8> = labels
            .iter()
            .flat_map(|&n| std::iter::once(n as u8).chain(std::iter::repeat_n(b'x', n)))
            .collect();
        body.extend([0, 0, 1, 0, 1]);
        parse(&packet(1, 0, &body), Transport::Udp)
    };
    // 3 * 64 + 62 + 1 = 255 bytes: the longest allowed.
    assert_eq!(
        name(&[63, 63, 63, 61]).unwrap().questions[0].name.len(),
        3 * 64 + 61
    );
    assert_eq!(
        name(&[63, 63, 63, 62]),
        Err(DnsError::NameTooLong { offset: 12 })
    );
    assert_eq!(name(&[63; 5]), Err(DnsError::NameTooLong { offset: 12 }));
    // Over the limit only once decompressed: four 63-byte labels chained by backward pointers.
    let mut body = Vec::new();
    let mut prev = None;
    for _ in 0..4 {
        let at = 12 + body.len();
        body.push(63);
        body.extend([b'x'; 63]);
        match prev {
            None => body.push(0),
            Some(p) => body.extend([0xc0, p as u8]),
        }
        prev = Some(at);
    }
    body.extend([0xc0, prev.unwrap() as u8]);
    let p = packet(0, 0, &body);
    let x63 = "x".repeat(63);
    // Three levels are 193 bytes: fine.
    let third = 12 + 65 + 66;
    assert_eq!(
        read_name(&p, third, "test"),
        Ok((format!("{x63}.{x63}.{x63}"), third + 66))
    );
    // Four are 257, whether read from the fourth label or from a pointer to it.
    let fourth = third + 66;
    assert_eq!(
        read_name(&p, fourth, "test"),
        Err(DnsError::NameTooLong { offset: fourth })
    );
    let last = p.len() - 2;
    assert_eq!(
        read_name(&p, last, "test"),
        Err(DnsError::NameTooLong { offset: last })
    );
}

#[test]
fn huge_counts_short_body() {
    let mut body = hex("03776562066e6565646c6504746573740000010001");
    assert_eq!(
        parse(&packet(0xffff, 0, &body), Transport::Udp),
        Err(DnsError::TooManyRecords {
            section: "question",
            count: 0xffff,
            max: MAX_QUESTIONS
        })
    );
    let m = parse(&packet(1, 0xffff, &body), Transport::Udp).unwrap();
    assert!(m.answers.is_empty());
    body.extend(hex("c00c000100010000012c00040a010203"));
    let m = parse(&packet(1, 0xffff, &body), Transport::Udp).unwrap();
    assert_eq!(m.answers, [web_a()]);
    // More answers than the cap: the first MAX_ANSWERS are kept.
    for _ in 0..40 {
        body.extend(hex("c00c000100010000012c00040a010203"));
    }
    assert_eq!(
        parse(&packet(1, 41, &body), Transport::Udp)
            .unwrap()
            .answers
            .len(),
        MAX_ANSWERS
    );
}

#[test]
fn bad_rdata() {
    let q = hex("03776562066e6565646c6504746573740000010001");
    let with = |rr: &str| {
        let mut b = q.clone();
        b.extend(hex(rr));
        parse(&packet(1, 1, &b), Transport::Udp)
    };
    assert_eq!(
        with("c00c000100010000012c00050a01020304"),
        Err(DnsError::BadRdata {
            offset: 45,
            rtype: 1,
            len: 5
        })
    );
    // A CNAME whose name ends before RDLENGTH does, and one whose name runs past it.
    assert!(matches!(
        with("c00c000500010000012c0003c00c00"),
        Err(DnsError::BadRdata { rtype: 5, .. })
    ));
    assert!(matches!(
        with("c00c000500010000012c000103616263"),
        Err(DnsError::BadRdata { rtype: 5, .. })
    ));
    // Other types and classes are kept undecoded.
    assert_eq!(
        with("c00c001000010000012c0003026869").unwrap().answers[0].data,
        RData::Other { len: 3 }
    );
    assert_eq!(
        with("c00c000100030000012c00040a010203").unwrap().answers[0].data,
        RData::Other { len: 4 }
    );
}

#[test]
fn escaping() {
    // Labels "\x1b[31m", "a.b", "\\ \x7f\xff", then "test".
    let mut body = vec![
        5, 0x1b, b'[', b'3', b'1', b'm', 3, b'a', b'.', b'b', 4, b'\\', b' ', 0x7f, 0xff, 4,
    ];
    body.extend(b"TeSt\0\0\x01\0\x01");
    let m = parse(&packet(1, 0, &body), Transport::Udp).unwrap();
    assert_eq!(
        m.questions[0].name,
        r"\027[31m.a\046b.\092\032\127\255.TeSt"
    );
    // The root.
    let m = parse(&packet(1, 0, &[0, 0, 2, 0, 1]), Transport::Udp).unwrap();
    assert_eq!(m.questions, [question(".", 2)]);
}

/// xorshift64*: a seeded generator so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Random and mutated packets: never a panic, the caps hold, names stay printable ASCII.
#[test]
fn random_input_never_panics() {
    let seeds: Vec<Vec<u8>> = [
        A_RESPONSE,
        AAAA_RESPONSE,
        CNAME_RESPONSE,
        NXDOMAIN_RESPONSE,
        A_QUERY,
    ]
    .map(hex)
    .into();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut ok, mut ok_with_answers) = (0, 0);
    for case in 0..10_000 {
        let mut p = if case % 2 == 0 {
            (0..rng.below(300)).map(|_| rng.next() as u8).collect()
        } else {
            // A real packet with a few bytes changed (often to pointer or length bytes) and maybe cut.
            let mut p = seeds[rng.below(seeds.len())].clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(p.len());
                p[at] = [rng.next() as u8, 0xc0, 0x3f, 0x40, 0, 0xff][rng.below(6)];
            }
            p.truncate(p.len() - rng.below(8));
            p
        };
        if case % 3 == 0 {
            p.splice(0..0, (p.len() as u16).to_be_bytes());
        }
        let transport = if case % 3 == 0 {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        if let Ok(m) = parse(&p, transport) {
            ok += 1;
            ok_with_answers += usize::from(!m.answers.is_empty());
            assert!(m.questions.len() <= MAX_QUESTIONS && m.answers.len() <= MAX_ANSWERS);
            let names = m
                .questions
                .iter()
                .map(|q| &q.name)
                .chain(m.answers.iter().map(|a| &a.name));
            for n in names {
                assert!(n.bytes().all(|b| b.is_ascii_graphic()), "{n:?}");
            }
        }
    }
    // The mutated half must reach the record parser, or this test proves little.
    assert!(
        ok > 500 && ok_with_answers > 100,
        "{ok} parsed, {ok_with_answers} with answers"
    );
}
