#!/usr/bin/python3
"""Joins a hookfan consumer group, prints each event leased to it and acks it.

The members of a group share its events: run several to spread the work. The
group is created on first use with --type and --from; later members just
join. Delivery is at least once: an event printed but not acked when the
stream drops is delivered again. On UNAVAILABLE (hookfan restarting or
unreachable) it rejoins with jittered backoff.

Exit status: 0 after --max events; 1 when hookfan refuses or ends the
stream for another reason (group exists with another filter, deleted); 2 for
a bad flag.
"""

import argparse
import queue

import common
from common import broker_pb2, broker_pb2_grpc, grpc  # stubs and grpcio, checked there


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--group", required=True,
                        help="group name: 1 to 128 of [A-Za-z0-9._-]")
    common.add_flags(parser)
    args = parser.parse_args()

    join = broker_pb2.ConsumeRequest(open=broker_pb2.ConsumerOpen(
        group=args.group, filter=broker_pb2.Filter(types=args.types), start=args.start))
    backoff = common.Backoff()
    handled = 0
    while True:
        # What this member says, in order: join first, then one ack per event.
        # None ends the requests; hookfan then ends the stream.
        requests = queue.Queue()
        requests.put(join)
        with common.channel(args.server) as channel:
            stream = broker_pb2_grpc.EventBrokerStub(channel).Consume(
                iter(requests.get, None))
            try:
                for response in stream:
                    backoff.reset()
                    for delivery in response.deliveries:
                        if handled == args.max:
                            break  # not acked: the group leases it to another member
                        common.print_event(delivery.event, args.json)
                        requests.put(broker_pb2.ConsumeRequest(
                            ack=broker_pb2.Sequences(sequences=[delivery.event.sequence])))
                        handled += 1
                        if handled == args.max:
                            requests.put(None)
                if handled == args.max:
                    return 0
                return common.fail("hookfan ended the stream")
            except grpc.RpcError as error:
                reason = f"{error.code().name}: {error.details()}"
                # As for Subscribe: both say to come back.
                if error.code() not in (grpc.StatusCode.UNAVAILABLE,
                                        grpc.StatusCode.RESOURCE_EXHAUSTED):
                    return common.fail(reason)
                if handled == args.max:
                    return common.fail(f"{reason}; the last acks may be lost "
                                       "(the group will deliver those events again)")
            finally:
                requests.put(None)  # frees the thread gRPC reads requests on
        backoff.wait(reason)


if __name__ == "__main__":
    common.run(main)
