//! DNS messages (RFC 1035) as capture sees them: a payload copied from a UDP or TCP packet,
//! possibly cut at a fixed capture size, always attacker-controlled.
//!
//! [`parse`] reads the header, the questions and the answer records that are fully present;
//! the authority and additional sections are not read. Work and memory are bounded on any input:
//! at most [`MAX_QUESTIONS`] questions and [`MAX_ANSWERS`] answers, names of at most 255 bytes,
//! compression pointers that must point strictly before every byte of the name read so far (so a
//! loop is impossible) and at most [`MAX_POINTERS`] of them per name; no recursion.
//!
//! Names are rendered zone-file style: labels joined with `.`, every byte outside printable ASCII
//! and every `.` or `\` inside a label written as `\DDD` (decimal), case kept as sent, the root as
//! `.`. A name can therefore carry no control character, ANSI escape or fake label separator.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Most questions read from one message; real messages carry one.
pub const MAX_QUESTIONS: usize = 32;
/// Most answer records read from one message; later ones are ignored.
pub const MAX_ANSWERS: usize = 32;
/// Most compression pointers followed while reading one name.
pub const MAX_POINTERS: usize = 64;
/// Longest name on the wire, length bytes included (RFC 1035 §2.3.4).
pub const MAX_NAME_LEN: usize = 255;

const HEADER_LEN: usize = 12;
const CLASS_IN: u16 = 1;
const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_AAAA: u16 = 28;

/// How the payload was carried: over TCP a message starts with its 2-byte length (RFC 1035 §4.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// One message per datagram.
    Udp,
    /// A 2-byte big-endian length, then the message.
    Tcp,
}

/// The parts of a DNS message needle records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Transaction id.
    pub id: u16,
    /// QR bit: a response rather than a query.
    pub response: bool,
    /// OPCODE (0 = standard query).
    pub opcode: u8,
    /// RCODE (0 = no error, 3 = NXDOMAIN).
    pub rcode: u8,
    /// TC bit: the server truncated the message (not the capture).
    pub truncated: bool,
    /// The questions, in order.
    pub questions: Vec<Question>,
    /// The answer records fully present in the payload, in order, at most [`MAX_ANSWERS`].
    pub answers: Vec<Answer>,
}

/// One entry of the question section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// The name asked for, escaped (see the module docs).
    pub name: String,
    /// QTYPE (1 = A, 28 = AAAA, ...).
    pub qtype: u16,
    /// QCLASS (1 = IN).
    pub qclass: u16,
}

/// One resource record of the answer section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The owner name, escaped (see the module docs).
    pub name: String,
    /// TYPE of the record.
    pub rtype: u16,
    /// TTL in seconds.
    pub ttl: u32,
    /// The record data, decoded for A, AAAA and CNAME of class IN.
    pub data: RData,
}

/// Record data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RData {
    /// An IPv4 address.
    A(Ipv4Addr),
    /// An IPv6 address.
    Aaaa(Ipv6Addr),
    /// The canonical name, escaped like every name.
    Cname(String),
    /// Any other type or class, not decoded.
    Other {
        /// RDLENGTH.
        len: u16,
    },
}

/// Why a payload is not a DNS message. Offsets count from the first byte of the message (after
/// the TCP length prefix).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// The payload ends inside the header or the first question.
    #[error("DNS message truncated in the {field} at byte {offset}")]
    Truncated {
        /// What was being read.
        field: &'static str,
        /// Where the missing byte would be.
        offset: usize,
    },
    /// A compression pointer leads back into bytes already read for the same name.
    #[error("DNS name compression loop: pointer at byte {offset} to byte {target}")]
    CompressionLoop {
        /// Where the pointer is.
        offset: usize,
        /// Where it points.
        target: usize,
    },
    /// A compression pointer points forward or into the header.
    #[error(
        "DNS name compression pointer at byte {offset} points forward or into the header (byte {target})"
    )]
    BadPointer {
        /// Where the pointer is.
        offset: usize,
        /// Where it points.
        target: usize,
    },
    /// More compression pointers than [`MAX_POINTERS`] in one name.
    #[error("DNS name at byte {offset} follows more than {MAX_POINTERS} compression pointers")]
    TooManyPointers {
        /// Where the name starts.
        offset: usize,
    },
    /// A label length byte over 63 that is not a pointer (also the obsolete extended label types).
    #[error("DNS label at byte {offset} has length byte {len:#04x}: over 63 and not a pointer")]
    LabelTooLong {
        /// Where the length byte is.
        offset: usize,
        /// The length byte.
        len: u8,
    },
    /// A name longer than [`MAX_NAME_LEN`] bytes once decompressed.
    #[error("DNS name at byte {offset} is longer than {MAX_NAME_LEN} bytes")]
    NameTooLong {
        /// Where the name starts.
        offset: usize,
    },
    /// A section count over its cap.
    #[error("DNS {section} count {count} is over the cap of {max}")]
    TooManyRecords {
        /// Which section.
        section: &'static str,
        /// The count in the header.
        count: u16,
        /// The cap.
        max: usize,
    },
    /// Record data whose length does not fit its type (an A record of 5 bytes, a CNAME whose
    /// name does not fill RDLENGTH).
    #[error("DNS record of type {rtype} at byte {offset} has bad data length {len}")]
    BadRdata {
        /// Where the record data starts.
        offset: usize,
        /// TYPE of the record.
        rtype: u16,
        /// RDLENGTH.
        len: u16,
    },
}

/// Parses a DNS message from a captured payload.
///
/// The payload may be cut by capture at a fixed size: parse what is complete; `answers` holds
/// the records fully present; a cut inside the header or the first question is an error. Over
/// TCP, bytes past the length in the prefix (a next message) are ignored.
pub fn parse(payload: &[u8], transport: Transport) -> Result<Message, DnsError> {
    let msg = match transport {
        Transport::Udp => payload,
        Transport::Tcp => {
            let Some((prefix, rest)) = payload.split_first_chunk::<2>() else {
                return Err(DnsError::Truncated {
                    field: "TCP length prefix",
                    offset: 0,
                });
            };
            &rest[..rest.len().min(usize::from(u16::from_be_bytes(*prefix)))]
        }
    };
    let header = |field, at: usize| {
        u16_at(msg, at).ok_or(DnsError::Truncated {
            field,
            offset: msg.len(),
        })
    };
    let id = header("header", 0)?;
    let flags = header("header", 2)?;
    let qdcount = header("header", 4)?;
    let ancount = header("header", 6)?;
    header("header", 10)?;
    if usize::from(qdcount) > MAX_QUESTIONS {
        return Err(DnsError::TooManyRecords {
            section: "question",
            count: qdcount,
            max: MAX_QUESTIONS,
        });
    }
    let mut m = Message {
        id,
        response: flags & 0x8000 != 0,
        opcode: ((flags >> 11) & 0xf) as u8,
        rcode: (flags & 0xf) as u8,
        truncated: flags & 0x0200 != 0,
        questions: Vec::with_capacity(usize::from(qdcount)),
        answers: Vec::new(),
    };
    let mut pos = HEADER_LEN;
    for i in 0..qdcount {
        match read_question(msg, pos) {
            Ok((q, end)) => {
                m.questions.push(q);
                pos = end;
            }
            // Capture cut the payload: keep what is complete, unless nothing useful is left.
            Err(DnsError::Truncated { .. }) if i > 0 => return Ok(m),
            Err(e) => return Err(e),
        }
    }
    let n_answers = usize::from(ancount).min(MAX_ANSWERS);
    m.answers.reserve_exact(n_answers);
    for _ in 0..n_answers {
        match read_answer(msg, pos) {
            Ok((a, end)) => {
                m.answers.push(a);
                pos = end;
            }
            Err(DnsError::Truncated { .. }) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(m)
}

fn u16_at(msg: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(*msg.get(at..)?.first_chunk::<2>()?))
}

fn u32_at(msg: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(*msg.get(at..)?.first_chunk::<4>()?))
}

fn read_question(msg: &[u8], start: usize) -> Result<(Question, usize), DnsError> {
    let (name, pos) = read_name(msg, start, "question name")?;
    let truncated = DnsError::Truncated {
        field: "question",
        offset: msg.len(),
    };
    let qtype = u16_at(msg, pos).ok_or(truncated.clone())?;
    let qclass = u16_at(msg, pos + 2).ok_or(truncated)?;
    Ok((
        Question {
            name,
            qtype,
            qclass,
        },
        pos + 4,
    ))
}

fn read_answer(msg: &[u8], start: usize) -> Result<(Answer, usize), DnsError> {
    let (name, pos) = read_name(msg, start, "answer name")?;
    let truncated = DnsError::Truncated {
        field: "answer",
        offset: msg.len(),
    };
    let rtype = u16_at(msg, pos).ok_or(truncated.clone())?;
    let class = u16_at(msg, pos + 2).ok_or(truncated.clone())?;
    let ttl = u32_at(msg, pos + 4).ok_or(truncated.clone())?;
    let len = u16_at(msg, pos + 8).ok_or(truncated.clone())?;
    let at = pos + 10;
    let end = at + usize::from(len);
    let rdata = msg.get(at..end).ok_or(truncated)?;
    let bad = DnsError::BadRdata {
        offset: at,
        rtype,
        len,
    };
    let data = match (class, rtype) {
        (CLASS_IN, TYPE_A) => RData::A(Ipv4Addr::from(
            *<&[u8; 4]>::try_from(rdata).map_err(|_| bad)?,
        )),
        (CLASS_IN, TYPE_AAAA) => RData::Aaaa(Ipv6Addr::from(
            *<&[u8; 16]>::try_from(rdata).map_err(|_| bad)?,
        )),
        (CLASS_IN, TYPE_CNAME) => {
            // The name may point back before the record, but its own bytes must be the RDATA.
            let (target, name_end) =
                read_name(&msg[..end], at, "CNAME data").map_err(|e| match e {
                    DnsError::Truncated { .. } => bad.clone(),
                    e => e,
                })?;
            if name_end != end {
                return Err(bad);
            }
            RData::Cname(target)
        }
        _ => RData::Other { len },
    };
    Ok((
        Answer {
            name,
            rtype,
            ttl,
            data,
        },
        end,
    ))
}

/// Reads the name starting at `start`; returns it rendered and the offset just after its bytes
/// in the record (after the first pointer, if any).
fn read_name(msg: &[u8], start: usize, field: &'static str) -> Result<(String, usize), DnsError> {
    let mut out = String::new();
    let mut pos = start;
    let mut end = None;
    // Bytes [lowest, highest] were read for this name; every pointer must go below `lowest`.
    let mut lowest = start;
    let mut highest = start;
    let mut wire_len = 0;
    let mut pointers = 0;
    loop {
        let &len = msg
            .get(pos)
            .ok_or(DnsError::Truncated { field, offset: pos })?;
        match len & 0xc0 {
            0xc0 => {
                let &low = msg.get(pos + 1).ok_or(DnsError::Truncated {
                    field,
                    offset: pos + 1,
                })?;
                let target = usize::from(len & 0x3f) << 8 | usize::from(low);
                end.get_or_insert(pos + 2);
                highest = highest.max(pos + 1);
                pointers += 1;
                if pointers > MAX_POINTERS {
                    return Err(DnsError::TooManyPointers { offset: start });
                }
                if (lowest..=highest).contains(&target) {
                    return Err(DnsError::CompressionLoop {
                        offset: pos,
                        target,
                    });
                }
                if target > highest || target < HEADER_LEN {
                    return Err(DnsError::BadPointer {
                        offset: pos,
                        target,
                    });
                }
                pos = target;
                lowest = target;
            }
            0x00 => {
                let len = usize::from(len);
                wire_len += 1 + len;
                if wire_len > MAX_NAME_LEN {
                    return Err(DnsError::NameTooLong { offset: start });
                }
                if len == 0 {
                    break;
                }
                let label = msg.get(pos + 1..pos + 1 + len).ok_or(DnsError::Truncated {
                    field,
                    offset: msg.len(),
                })?;
                highest = highest.max(pos + len);
                if !out.is_empty() {
                    out.push('.');
                }
                push_label(&mut out, label);
                pos += 1 + len;
            }
            _ => return Err(DnsError::LabelTooLong { offset: pos, len }),
        }
    }
    if out.is_empty() {
        out.push('.');
    }
    Ok((out, end.unwrap_or(pos + 1)))
}

/// Appends one label, zone-file escaped: printable ASCII as is, anything else and `.`/`\` as `\DDD`.
fn push_label(out: &mut String, label: &[u8]) {
    for &b in label {
        if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\{b:03}");
        }
    }
}

#[cfg(test)]
mod tests;
