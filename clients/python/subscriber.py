#!/usr/bin/python3
"""Prints the hookfan events matching a filter, in sequence order.

When the stream drops (UNAVAILABLE: hookfan restarting or unreachable) it
reconnects with jittered backoff and resumes after the last sequence it saw,
so nothing is missed and nothing repeats.

Exit status: 0 after --max events; 1 when hookfan refuses or ends the
stream for another reason (bad filter, start past retention); 2 for a bad flag.
"""

import argparse

import common
from common import broker_pb2, broker_pb2_grpc, grpc  # stubs and grpcio, checked there


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_flags(parser)
    args = parser.parse_args()

    backoff = common.Backoff()
    resume_after = None  # the sequence to resume after; None until one is known
    snapshot_through = 0  # where a snapshot start's snapshot ends
    printed = 0
    while True:
        # Cut off inside a snapshot: a new snapshot holds what this one had
        # yet to send, and what was printed already is skipped below.
        retake = (args.start.WhichOneof("position") == "snapshot"
                  and (resume_after or 0) < snapshot_through)
        start = (args.start if resume_after is None or retake
                 else broker_pb2.StartPosition(after_sequence=resume_after))
        request = broker_pb2.SubscribeRequest(
            filter=broker_pb2.Filter(types=args.types), start=start)
        with common.channel(args.server) as channel:
            stream = broker_pb2_grpc.EventBrokerStub(channel).Subscribe(request)
            try:
                # Once registered, hookfan says where the stream starts: resuming
                # from there also holds for a "latest" stream cut before any event.
                metadata = stream.initial_metadata()
                last_printed = resume_after or 0
                resume_after = common.later(resume_after, metadata, "hookfan-start-after")
                snapshot_through = common.later(snapshot_through, metadata,
                                                "hookfan-snapshot-through")
                for response in stream:
                    backoff.reset()
                    for event in response.events:
                        if event.sequence <= last_printed:
                            continue  # printed before a new snapshot
                        common.print_event(event, args.json)
                        resume_after = event.sequence
                        printed += 1
                        if printed == args.max:
                            stream.cancel()
                            return 0
                return common.fail("hookfan ended the stream")
            except grpc.RpcError as error:
                reason = f"{error.code().name}: {error.details()}"
                # UNAVAILABLE: hookfan restarting or unreachable;
                # RESOURCE_EXHAUSTED: busy, or this client stopped reading
                # for --grpc-stall-timeout. Both say to come back.
                if error.code() not in (grpc.StatusCode.UNAVAILABLE,
                                        grpc.StatusCode.RESOURCE_EXHAUSTED):
                    return common.fail(reason)
                # A draining or stalled stream names the last sequence sent.
                resume_after = common.later(resume_after, error.trailing_metadata(),
                                            "hookfan-resume-after")
        backoff.wait(reason)


if __name__ == "__main__":
    common.run(main)
