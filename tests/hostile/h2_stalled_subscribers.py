#!/usr/bin/python3
"""Subscribers that never read: opens Subscribe streams from earliest over
raw HTTP/2 (python3-h2), grants the server the largest flow-control windows
HTTP/2 allows, then stops reading its sockets, so what the server sends piles
up in the server (issue #23, item 4).

Usage: h2_stalled_subscribers.py PORT CONNECTIONS STREAMS_PER_CONNECTION READY_FILE

Once every request is sent it writes READY_FILE and blocks on stdin; at EOF
it closes every connection (abruptly: the server sees the peer go) and exits.
"""

import socket
import struct
import sys

import h2.config
import h2.connection
import h2.settings

MAX_WINDOW = 2**31 - 1
# SubscribeRequest{start: StartPosition{earliest: true}}: field 2 holding
# field 2 (varint) = 1.
SUBSCRIBE_EARLIEST = bytes([0x12, 0x02, 0x10, 0x01])


def grpc_message(payload):
    return struct.pack(">BI", 0, len(payload)) + payload


def open_connection(port, streams):
    sock = socket.create_connection(("127.0.0.1", port))
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.update_settings({
        h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: MAX_WINDOW,
        h2.settings.SettingCodes.MAX_FRAME_SIZE: 2**24 - 1,
    })
    conn.increment_flow_control_window(MAX_WINDOW - 65535)
    headers = [
        (":method", "POST"),
        (":scheme", "http"),
        (":authority", "127.0.0.1:%d" % port),
        (":path", "/hookfan.v1.EventBroker/Subscribe"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]
    for _ in range(streams):
        stream_id = conn.get_next_available_stream_id()
        conn.send_headers(stream_id, headers)
        conn.send_data(stream_id, grpc_message(SUBSCRIBE_EARLIEST), end_stream=True)
    sock.sendall(conn.data_to_send())
    return sock


def main():
    port, connections, streams = (int(a) for a in sys.argv[1:4])
    ready_file = sys.argv[4]
    socks = [open_connection(port, streams) for _ in range(connections)]
    with open(ready_file, "w") as f:
        f.write("%d\n" % (connections * streams))
    sys.stdin.read()  # never reads the sockets: the whole point
    for sock in socks:
        # RST on close, as a client that crashed: nothing is drained.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


if __name__ == "__main__":
    main()
