"""What the hookfan Python examples share: the generated stubs, the filter
and start flags, event printing, resume metadata and reconnect backoff."""

import argparse
import os
import random
import sys
import time

# The generated stubs: from PYTHONPATH, else from ./gen (generate.sh's default).
sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))
try:
    import grpc
    from google.protobuf import json_format
    from hookfan.v1 import broker_pb2, broker_pb2_grpc  # noqa: F401 (for the examples)
except ModuleNotFoundError as error:
    sys.exit(f"{error}: generate the stubs with clients/python/generate.sh and use a "
             "Python with grpcio and protobuf (Debian: /usr/bin/python3 with "
             "python3-grpcio and python3-protobuf)")


def start_position(value):
    """Parses --from: earliest, latest, snapshot, or the first sequence to
    receive."""
    if value in ("earliest", "latest", "snapshot"):
        return broker_pb2.StartPosition(**{value: True})
    if value.isdigit() and int(value) >= 1:
        return broker_pb2.StartPosition(after_sequence=int(value) - 1)
    raise argparse.ArgumentTypeError(
        f"expected earliest, latest, snapshot or a sequence >= 1, got {value!r}")


def positive(value):
    """Parses --max: a count of at least 1."""
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive count, got {value!r}")
    return int(value)


def add_flags(parser):
    """Adds the flags both examples take."""
    parser.add_argument("--server", default="127.0.0.1:9090",
                        help="hookfan's gRPC address (default %(default)s)")
    parser.add_argument("--type", dest="types", action="append", default=[],
                        metavar="PATTERN",
                        help="event type pattern, e.g. 'applivery.device.*'; "
                             "repeat for several (default: every type)")
    parser.add_argument("--from", dest="start", type=start_position,
                        default=start_position("latest"), metavar="earliest|latest|N",
                        help="where to start: the oldest event held, new events "
                             "only (default), or sequence N")
    parser.add_argument("--max", type=positive, metavar="N",
                        help="exit after N events")
    parser.add_argument("--json", action="store_true",
                        help="print each event as one JSON object per line "
                             "(protobuf's JSON mapping)")


def channel(server):
    """A new insecure channel to `server`. The examples open one per attempt:
    a channel that failed keeps failing calls until its own reconnect backoff
    (up to 2 minutes) expires, while a new one connects at once, so Backoff
    alone paces reconnects."""
    return grpc.insecure_channel(server)


def print_event(event, as_json):
    """Prints one event on one line: protobuf's JSON mapping, or sequence,
    time, type, subject and trace id."""
    if as_json:
        line = json_format.MessageToJson(event, indent=None)
    else:
        line = f"{event.sequence:>8} {event.time.ToJsonString()} {event.type} {event.subject}"
        # The trace id of the event's W3C traceparent ("00-<trace id>-<span
        # id>-<flags>"), which hookfan gives every event: find it in a tracer.
        traceparent = event.extensions.get("traceparent", "")
        if len(traceparent) >= 55:
            line += f" trace {traceparent[3:35]}"
    print(line, flush=True)


def later(sequence, metadata, key):
    """The greater of `sequence` (None: unknown) and the sequence under `key` in
    gRPC `metadata`, if there is one."""
    for k, value in metadata or ():
        if k == key:
            return max(sequence or 0, int(value))
    return sequence


class Backoff:
    """Exponential backoff with jitter: each wait is between half and all of a
    ceiling that doubles after every failed attempt, from 0.1 s up to 10 s.
    Random spread keeps many clients from reconnecting in lockstep."""

    def __init__(self, first=0.1, cap=10.0):
        self._first, self._cap = first, cap
        self.reset()

    def reset(self):
        """Call once a stream works again."""
        self._ceiling = self._first

    def wait(self, reason):
        """Says why and when the example reconnects, then sleeps until then."""
        delay = random.uniform(self._ceiling / 2, self._ceiling)
        self._ceiling = min(self._ceiling * 2, self._cap)
        log(f"{reason}; reconnecting in {delay:.1f}s")
        time.sleep(delay)


def log(message):
    """Writes a line to stderr, after the program's name."""
    print(f"{os.path.basename(sys.argv[0])}: {message}", file=sys.stderr, flush=True)


def fail(message):
    """Reports why the example stops; returns exit status 1."""
    log(message)
    return 1


def run(main):
    """Exits with main()'s status; Ctrl-C exits 130 without a traceback."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
