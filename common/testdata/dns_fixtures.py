#!/usr/bin/env python3
"""Make the real DNS packets that common/src/dns.rs embeds as hex test fixtures.

Queries come from `busybox nslookup`, responses from a real dnsmasq (Debian `dnsmasq-base`),
both on 127.0.0.1 only: nslookup talks to a small relay here, which forwards each query to
dnsmasq and records the query and the answer bytes exactly as they crossed the sockets. The TCP
fixture sends a recorded query to dnsmasq's TCP port with the 2-byte length prefix and records
the prefixed reply. Run it by hand (needs busybox and dnsmasq); CI only uses the embedded hex.
"""
import socket, subprocess, time, sys

DNSMASQ_PORT = 53531
RELAY_PORT = 53532


def start_dnsmasq():
    return subprocess.Popen([
        "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--user=root",
        f"--port={DNSMASQ_PORT}", "--listen-address=127.0.0.1", "--bind-interfaces",
        "--no-resolv", "--no-hosts", "--local=/needle.test/", "--local-ttl=300",
        "--host-record=web.needle.test,10.1.2.3,fd00::1234",
        "--cname=www.needle.test,web.needle.test",
    ], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def relay_one_lookup(args):
    """Run nslookup with args against the relay; return [(query, response)] in order."""
    relay = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    relay.bind(("127.0.0.1", RELAY_PORT))
    relay.settimeout(3)
    up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    up.settimeout(3)
    ns = subprocess.Popen(["busybox", "nslookup", *args, f"127.0.0.1:{RELAY_PORT}"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    pairs = []
    try:
        while True:
            try:
                q, client = relay.recvfrom(4096)
            except socket.timeout:
                break
            up.sendto(q, ("127.0.0.1", DNSMASQ_PORT))
            r, _ = up.recvfrom(4096)
            relay.sendto(r, client)
            pairs.append((q, r))
            if ns.poll() is not None:
                break
    finally:
        out = ns.communicate(timeout=5)[0].decode(errors="replace")
        relay.close()
        up.close()
    sys.stderr.write(f"--- nslookup {' '.join(args)}\n{out}")
    return pairs


def tcp_exchange(query):
    with socket.create_connection(("127.0.0.1", DNSMASQ_PORT), timeout=3) as s:
        s.sendall(len(query).to_bytes(2, "big") + query)
        head = s.recv(2)
        n = int.from_bytes(head, "big")
        body = b""
        while len(body) < n:
            body += s.recv(n - len(body))
        return len(query).to_bytes(2, "big") + query, head + body


def main():
    d = start_dnsmasq()
    try:
        time.sleep(0.5)
        cases = {
            "A": ["-type=a", "web.needle.test"],
            "AAAA": ["-type=aaaa", "web.needle.test"],
            "CNAME": ["-type=a", "www.needle.test"],
            "NXDOMAIN": ["-type=a", "nope.needle.test"],
        }
        first = None
        for name, args in cases.items():
            for i, (q, r) in enumerate(relay_one_lookup(args)):
                print(f"{name} udp query {i}: {q.hex()}")
                print(f"{name} udp response {i}: {r.hex()}")
                first = first or q
        q, r = tcp_exchange(first)
        print(f"A tcp query: {q.hex()}")
        print(f"A tcp response: {r.hex()}")
    finally:
        d.terminate()
        d.wait()


if __name__ == "__main__":
    main()
