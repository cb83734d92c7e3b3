#!/usr/bin/env python3
"""Open N keep-alive connections to HOST:PORT, send one GET PATH on each and
read the whole response, then hold them all open. With a fifth argument,
CAFILE, the connections are TLS (HTTP/1.1, the server verified against
CAFILE), as cheap a client as keeps that many TLS sessions open.

Prints "READY <ok>" once every connection has had its answer, waits for a
line on stdin, then prints "ALIVE <n>" (connections the server has not
closed meanwhile) and exits, closing them all.
"""
import select
import socket
import ssl
import sys


def read_response(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            return None
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    while len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            return None
        body += chunk
    return status


def main():
    host, port, path, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    tls = None
    if len(sys.argv) > 5:
        tls = ssl.create_default_context(cafile=sys.argv[5])
        tls.set_alpn_protocols(["http/1.1"])
    req = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
           "User-Agent: idle.py\r\nAccept: */*\r\n\r\n").encode()
    socks, ok = [], 0
    for _ in range(n):
        s = socket.create_connection((host, port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls:
            s = tls.wrap_socket(s, server_hostname=host)
        s.sendall(req)
        if read_response(s) == 200:
            ok += 1
        socks.append(s)
    print(f"READY {ok}", flush=True)
    sys.stdin.readline()
    alive = 0
    for s in socks:
        r, _, _ = select.select([s], [], [], 0)
        if not r:
            alive += 1  # nothing to read: neither data nor EOF
            continue
        try:
            if tls:
                # No MSG_PEEK through TLS; the connections close next anyway.
                s.setblocking(False)
                try:
                    if s.recv(1):
                        alive += 1
                except ssl.SSLWantReadError:
                    alive += 1  # only TLS records with nothing for the application
            elif s.recv(1, socket.MSG_PEEK):
                alive += 1
        except OSError:
            pass
    print(f"ALIVE {alive}", flush=True)
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
