#!/usr/bin/python3
"""Crash soak (issue #9): kill -9 hookfan again and again under load and check
that every acknowledged webhook reaches every subscriber once, in order.

    crash_soak.py [--cycles N] [--subscribers K] [--posters W] [--seed S]
                  [--hookfan PATH] [--tail PATH] [--store sqlite|nats|nats://...]
                  [--keep]

Starts hookfan on a fresh data dir (OS-chosen ports, reused for every
restart), K `hookfan-tail --from earliest --output json` subscribers that
stay up for the whole run (they reconnect and resume by themselves) and W
poster threads sending tests/fixtures/applivery/*.json as fast as hookfan
answers. Then N times: load for a random 0.5-2 s, kill -9 hookfan, start it
again on the same ports and store. After a last stretch of load the posters
stop, and once the subscribers have caught up each one must hold exactly the
final log: sequences 1..last, contiguous and strictly increasing, no event
twice, every id answered 2xx at the sequence its answer named, and the same
id at each sequence as a fresh subscriber reading the log from the start.
Prints a summary; exit status 0 pass, 1 fail, 77 skipped (--store nats
without nats-server). A failed run keeps its directory (hookfan logs, one
file of events per subscriber).

--store nats starts a nats-server (-js, free port, own store dir) that lives
through the run, and kills only hookfan; --store nats://HOST:PORT uses an
existing one, with a stream and subject prefix of the run's own.
"""

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = sorted((REPO / "tests/fixtures/applivery").glob("*.json"))
TOKEN = "T"
START_TIMEOUT = 15  # seconds for hookfan to say it is listening
POST_TIMEOUT = 10  # seconds for one webhook answer
ERROR_PAUSE = 0.02  # seconds a poster waits after a failed request
KILL_WINDOW = 1.0  # seconds after "listening" in which failures count as the kill's


def log(line):
    print(f"crash_soak: {line}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Hookfan:
    """The hookfan process, one generation per start. Ports are the OS's
    choice on the first start and the same on every later one."""

    def __init__(self, binary, workdir, store_args):
        self.binary = binary
        self.workdir = workdir
        self.store_args = store_args
        self.http = "127.0.0.1:0"
        self.grpc = "127.0.0.1:0"
        self.generation = 0
        self.popen = None
        self.log_path = None
        self.bind_retries = 0

    def start(self):
        """Starts a generation and waits until it listens; retries a start
        that fails (a port still held, briefly, by the killed process's
        sockets). Returns the "hookfan listening" log line (a dict)."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            self.generation += 1
            self.log_path = self.workdir / f"hookfan-{self.generation:03d}.log"
            with open(self.log_path, "wb") as out:
                self.popen = subprocess.Popen(
                    [self.binary, "--http-listen", self.http, "--grpc-listen", self.grpc,
                     "--data-dir", str(self.workdir / "data"), "--applivery-token", TOKEN,
                     "--applivery-dedup-window=0", *self.store_args],
                    stdout=out, stderr=subprocess.STDOUT)
            while time.monotonic() < deadline:
                listening = self._listening()
                if listening:
                    self.http, self.grpc = listening["http"], listening["grpc"]
                    return listening
                if self.popen.poll() is not None:
                    break
                time.sleep(0.005)
            else:
                self.kill9()
                raise RuntimeError(f"hookfan did not listen within {START_TIMEOUT}s "
                                   f"(see {self.log_path})")
            if time.monotonic() >= deadline:
                raise RuntimeError(f"hookfan keeps exiting at start (see {self.log_path})")
            self.bind_retries += 1
            time.sleep(0.1)

    def _listening(self):
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return None
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("msg") == "hookfan listening":
                return entry
        return None

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def kill9(self):
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait()

    def stop(self):
        """SIGTERM (drain), then SIGKILL if it takes too long. Returns the
        exit status (None: killed or never started)."""
        if self.popen is None:
            return None
        if self.popen.poll() is not None:
            return self.popen.returncode
        self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(30)
        except subprocess.TimeoutExpired:
            self.kill9()
            return None

    def last_sequence(self):
        """hookfan_events_appended_total from /metrics: the log's last sequence."""
        with urllib.request.urlopen(f"http://{self.http}/metrics", timeout=10) as answer:
            for line in answer.read().decode().splitlines():
                if line.startswith("hookfan_events_appended_total"):
                    return int(float(line.split()[-1]))
        raise RuntimeError("/metrics has no hookfan_events_appended_total")


class Subscriber:
    """One hookfan-tail process for the whole run. Threads copy its stdout
    to a file and into `events` (receive time, sequence, id), and its
    stderr to a file and into `notes` (receive time, line)."""

    def __init__(self, index, tail, grpc, workdir):
        self.name = f"subscriber-{index}"
        self.events_path = workdir / f"{self.name}.jsonl"
        self.stderr_path = workdir / f"{self.name}.log"
        self.events = []
        self.notes = []
        self.bad_lines = []
        self.max_sequence = 0
        self.changed = threading.Condition()
        self.popen = subprocess.Popen(
            [tail, "--server", grpc, "--from", "earliest", "--output", "json",
             "--connect-timeout", "10"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.readers = [threading.Thread(target=self._read_events, daemon=True),
                        threading.Thread(target=self._read_notes, daemon=True)]
        for reader in self.readers:
            reader.start()

    def _read_events(self):
        with open(self.events_path, "w") as out:
            for line in self.popen.stdout:
                now = time.monotonic()
                out.write(line)
                try:
                    event = json.loads(line)
                    sequence, event_id = int(event["sequence"]), event["id"]
                except (ValueError, KeyError, TypeError):
                    with self.changed:
                        self.bad_lines.append(line.rstrip("\n"))
                    continue
                with self.changed:
                    self.events.append((now, sequence, event_id))
                    self.max_sequence = max(self.max_sequence, sequence)
                    self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def _read_notes(self):
        with open(self.stderr_path, "w") as out:
            for line in self.popen.stderr:
                self.notes.append((time.monotonic(), line.rstrip("\n")))
                out.write(line)
                out.flush()

    def wait_for(self, predicate, timeout):
        """Waits until predicate(self) holds or the process ends; returns it."""
        with self.changed:
            self.changed.wait_for(
                lambda: predicate(self) or self.popen.poll() is not None, timeout)
            return predicate(self)

    def reconnects(self):
        return sum(1 for _, line in self.notes if "reconnecting" in line)

    def accepted_again(self, since):
        """When the first stream after `since` was accepted ("stream accepted
        again" on stderr), or None."""
        return next((t for t, line in self.notes
                     if t >= since and "stream accepted again" in line), None)

    def stop(self):
        if self.popen.poll() is None:
            self.popen.terminate()
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
        for reader in self.readers:
            reader.join(10)


class Load:
    """W threads posting webhooks. Records every 2xx answer (time, status,
    id, sequence), every other answer and every connection error (time,
    what)."""

    def __init__(self, posters, seed):
        self.bodies = [path.read_bytes() for path in FIXTURES]
        self.acks = []
        self.refusals = []  # (time, HTTP status, body)
        self.errors = []  # (time, exception name)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.address = None  # "host:port", set before start
        self.threads = [threading.Thread(target=self._post, args=(random.Random(seed + i),),
                                         daemon=True) for i in range(posters)]

    def start(self, address):
        self.address = address
        for thread in self.threads:
            thread.start()

    def stop(self):
        self.stopping.set()
        for thread in self.threads:
            thread.join(POST_TIMEOUT + 5)

    def _post(self, rng):
        host, port = self.address.rsplit(":", 1)
        connection = None
        path = f"/webhooks/applivery/{TOKEN}"
        while not self.stopping.is_set():
            if connection is None:
                connection = http.client.HTTPConnection(host, int(port), timeout=POST_TIMEOUT)
            try:
                connection.request("POST", path, body=rng.choice(self.bodies),
                                   headers={"Content-Type": "application/json"})
                answer = connection.getresponse()
                body = answer.read()
                now = time.monotonic()
            except (OSError, http.client.HTTPException) as error:
                with self.lock:
                    self.errors.append((time.monotonic(), type(error).__name__))
                connection.close()
                connection = None
                time.sleep(ERROR_PAUSE)
                continue
            if 200 <= answer.status < 300:
                try:
                    parsed = json.loads(body)
                    ack = (now, answer.status, parsed["id"], int(parsed["sequence"]))
                except (ValueError, KeyError, TypeError):
                    with self.lock:
                        self.refusals.append((now, answer.status, body[:200]))
                    continue
                with self.lock:
                    self.acks.append(ack)
            else:
                with self.lock:
                    self.refusals.append((now, answer.status, body[:200]))
                if answer.will_close:
                    connection.close()
                    connection = None
                time.sleep(ERROR_PAUSE)
        if connection is not None:
            connection.close()

    def acked_since(self, since):
        with self.lock:
            return [ack for ack in self.acks if ack[0] >= since]


def nats_server():
    """The nats-server binary (Debian's package puts it in /usr/sbin), or None."""
    return shutil.which("nats-server") or shutil.which("nats-server", path="/usr/sbin")


class Nats:
    """A nats-server with JetStream on a free port, for --store nats."""

    def __init__(self, workdir):
        self.port = free_port()
        self.log_path = workdir / "nats-server.log"
        with open(self.log_path, "wb") as out:
            self.popen = subprocess.Popen(
                [nats_server(), "-js", "-a", "127.0.0.1", "-p", str(self.port),
                 "-sd", str(workdir / "nats")], stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.popen.poll() is not None:
                    break
                time.sleep(0.05)
        raise RuntimeError(f"nats-server did not start (see {self.log_path})")

    def stop(self):
        if self.popen.poll() is None:
            self.popen.terminate()
        self.popen.wait(30)


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def check_subscriber(subscriber, final, acked):
    """Returns the problems found in what `subscriber` received (at most a
    few of each kind), empty when it holds exactly the final log."""
    problems = []
    events = [(sequence, event_id) for _, sequence, event_id in subscriber.events]

    def report(what, examples):
        if examples:
            problems.append(f"{what} ({len(examples)}): {examples[:5]}")

    report("unparsable lines", subscriber.bad_lines)
    seen, duplicates = {}, []
    for sequence, event_id in events:
        if event_id in seen:
            duplicates.append((event_id, seen[event_id], sequence))
        seen[event_id] = sequence
    report("ids delivered more than once (id, sequence, sequence again)", duplicates)
    report("sequences not strictly increasing (previous, next)",
           [(a[0], b[0]) for a, b in zip(events, events[1:]) if b[0] <= a[0]])
    report("sequences not contiguous from 1 (position, sequence)",
           [(i + 1, sequence) for i, (sequence, _) in enumerate(events) if sequence != i + 1])
    report("acked ids never delivered (id, acked sequence)",
           [(event_id, sequence) for event_id, sequence in acked.items() if event_id not in seen])
    report("acked ids delivered at another sequence (id, acked, delivered)",
           [(event_id, sequence, seen[event_id]) for event_id, sequence in acked.items()
            if event_id in seen and seen[event_id] != sequence])
    report("events that differ from the final log (sequence, delivered id, log id)",
           [(sequence, event_id, final.get(sequence)) for sequence, event_id in events
            if final.get(sequence) != event_id])
    if len(events) != len(final):
        problems.append(f"{len(events)} events delivered, the final log holds {len(final)}")
    if subscriber.popen.poll() is not None:
        problems.append(f"hookfan-tail exited with {subscriber.popen.returncode} "
                        f"(see {subscriber.stderr_path})")
    return problems


def read_log(tail, grpc, last, timeout):
    """Reads sequences 1..last with a fresh hookfan-tail: {sequence: id}."""
    if last == 0:
        return {}
    result = subprocess.run(
        [tail, "--server", grpc, "--from", "earliest", "--output", "json", "--max", str(last)],
        capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"reading the final log failed ({result.returncode}): {result.stderr}")
    log_events = {}
    for line in result.stdout.splitlines():
        event = json.loads(line)
        log_events[int(event["sequence"])] = event["id"]
    return log_events


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    build = REPO / "build"
    parser.add_argument("--cycles", type=int, default=20, help="kill -9 cycles (default 20)")
    parser.add_argument("--subscribers", type=int, default=3, help="hookfan-tail processes (3)")
    parser.add_argument("--posters", type=int, default=4, help="webhook poster threads (4)")
    parser.add_argument("--hookfan", default=str(build / "server/hookfan"),
                        help="hookfan binary (default build/server/hookfan)")
    parser.add_argument("--tail", default=str(build / "clients/hookfan-tail"),
                        help="hookfan-tail binary (default build/clients/hookfan-tail)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    parser.add_argument("--min-run", type=float, default=0.5, help="shortest load between kills (s)")
    parser.add_argument("--max-run", type=float, default=2.0, help="longest load between kills (s)")
    parser.add_argument("--settle-timeout", type=float, default=60,
                        help="seconds the subscribers get to catch up at the end (60)")
    parser.add_argument("--max-resume", type=float, default=None,
                        help="fail when a subscriber takes longer than this many seconds "
                             "after a kill to have its stream accepted again (default: report only)")
    parser.add_argument("--store", default="sqlite",
                        help="sqlite (default), nats (start a nats-server), or nats://HOST:PORT")
    parser.add_argument("--keep", action="store_true", help="keep the run's directory")
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 32)
    if args.cycles < 0 or args.subscribers < 1 or args.posters < 1:
        parser.error("--cycles >= 0, --subscribers >= 1, --posters >= 1")
    if not (0 < args.min_run <= args.max_run):
        parser.error("0 < --min-run <= --max-run")
    return args


def run(args, workdir):
    """The soak; returns the list of problems (empty: pass)."""
    rng = random.Random(args.seed)
    started = time.monotonic()
    nats = None
    store_args = []
    if args.store == "nats" or args.store.startswith(("nats://", "tls://")):
        if args.store == "nats":
            nats = Nats(workdir)
            address = f"nats://127.0.0.1:{nats.port}"
        else:
            address = args.store
        run_id = f"SOAK{args.seed:08X}{os.getpid():X}"
        store_args = ["--store", address, "--nats-stream", run_id,
                      "--nats-subject-prefix", f"{run_id.lower()}.events"]
    elif args.store != "sqlite":
        raise RuntimeError(f"--store: sqlite, nats or nats://HOST:PORT, not {args.store!r}")

    # The binaries under test, copied: a rebuild during the run changes nothing.
    (workdir / "bin").mkdir()
    hookfan_binary = shutil.copy2(args.hookfan, workdir / "bin")
    tail_binary = shutil.copy2(args.tail, workdir / "bin")
    hookfan = Hookfan(hookfan_binary, workdir, store_args)
    subscribers = []
    load = Load(args.posters, args.seed)
    restarts = []  # per kill: {"kill": time, "listening": time the new process listened}
    problems = []
    final = {}  # sequence -> id, read at the end
    catch_up = None  # seconds from the last post to every subscriber holding the log
    try:
        hookfan.start()
        log(f"hookfan http {hookfan.http} grpc {hookfan.grpc}, store {args.store}, "
            f"seed {args.seed}, dir {workdir}")
        subscribers = [Subscriber(i, tail_binary, hookfan.grpc, workdir)
                       for i in range(args.subscribers)]
        load.start(hookfan.http)

        for cycle in range(1, args.cycles + 1):
            time.sleep(rng.uniform(args.min_run, args.max_run))
            if not hookfan.alive():
                raise RuntimeError(f"hookfan exited by itself with {hookfan.popen.returncode} "
                                   f"before kill {cycle} (see {hookfan.log_path})")
            killed = time.monotonic()
            hookfan.kill9()
            hookfan.start()
            restarts.append({"kill": killed, "listening": time.monotonic()})
            if cycle % 5 == 0 or cycle == args.cycles:
                with load.lock:
                    acked = len(load.acks)
                log(f"cycle {cycle}/{args.cycles}: {acked} webhooks acked so far")

        # A last stretch of load, so the last restart also serves webhooks.
        deadline = time.monotonic() + 10
        last_start = restarts[-1]["listening"] if restarts else started
        while time.monotonic() < deadline and not load.acked_since(last_start):
            time.sleep(0.05)
        time.sleep(rng.uniform(args.min_run, args.max_run))
        load.stop()
        load_stopped = time.monotonic()
        if not hookfan.alive():
            raise RuntimeError(f"hookfan exited by itself with {hookfan.popen.returncode} "
                               f"(see {hookfan.log_path})")

        # Every 2xx id, once; and no two ids answered with one sequence.
        acked = {}
        by_sequence = {}
        for _, status, event_id, sequence in load.acks:
            if status != 202:
                problems.append(f"webhook answered {status} with dedup off: {event_id}")
            if event_id in acked:
                problems.append(f"id {event_id} acked twice")
            if by_sequence.setdefault(sequence, event_id) != event_id:
                problems.append(f"sequence {sequence} acked for {by_sequence[sequence]} "
                                f"and {event_id}")
            acked[event_id] = sequence
        if not acked:
            problems.append("no webhook was acknowledged")

        # The log is still now: wait until every subscriber has reached its
        # end (events arrive in sequence order, so by then it has had every
        # acked one, and the committed but unanswered ones too).
        last = hookfan.last_sequence()
        if acked and last < max(acked.values()):
            problems.append(f"the log ends at {last}, before acked {max(acked.values())}")
        settle_deadline = time.monotonic() + args.settle_timeout
        for subscriber in subscribers:
            subscriber.wait_for(lambda s: s.max_sequence >= last,
                                max(0.0, settle_deadline - time.monotonic()))
        catch_up = time.monotonic() - load_stopped
        final = read_log(tail_binary, hookfan.grpc, last, args.settle_timeout)
        if sorted(final) != list(range(1, last + 1)):
            problems.append(f"the final log is not sequences 1..{last}")
        for event_id, sequence in acked.items():
            if final.get(sequence) != event_id:
                problems.append(f"acked {event_id} at {sequence}, "
                                f"the final log has {final.get(sequence)} there")
                break
        for subscriber in subscribers:
            problems += [f"{subscriber.name}: {p}"
                         for p in check_subscriber(subscriber, final, acked)]
        for subscriber in subscribers:
            subscriber.stop()
        status = hookfan.stop()  # a drain with nothing left to do
        if status != 0:
            problems.append(f"hookfan's SIGTERM drain ended with {status} (see {hookfan.log_path})")
    finally:
        load.stop()
        for subscriber in subscribers:
            subscriber.stop()
        hookfan.stop()
        if nats is not None:
            nats.stop()

    # Time to recover: from the kill to the new process listening, to its
    # first 202 (answers read after it listens; the killed process's last
    # answers may still be read just after the kill), and to every
    # subscriber holding that event.
    acks = sorted(load.acks)
    recover_listen = [r["listening"] - r["kill"] for r in restarts]
    recover_ack, recover_all, recover_streams = [], [], []
    for restart in restarts:
        accepted = [s.accepted_again(restart["kill"]) for s in subscribers]
        if None not in accepted:
            recover_streams.append(max(accepted) - restart["kill"])
        first = next((a for a in acks if a[0] >= restart["listening"]), None)
        if first is None:
            continue
        recover_ack.append(first[0] - restart["kill"])
        delivered = []
        for subscriber in subscribers:
            t = next((t for t, sequence, _ in subscriber.events if sequence >= first[3]), None)
            if t is not None:
                delivered.append(t)
        if len(delivered) == len(subscribers):
            recover_all.append(max(delivered) - restart["kill"])

    if args.max_resume is not None and recover_streams and max(recover_streams) > args.max_resume:
        problems.append(f"a subscriber resumed {max(recover_streams):.3f}s after a kill "
                        f"(--max-resume {args.max_resume})")

    def in_kill_window(t):
        return any(r["kill"] <= t <= r["listening"] + KILL_WINDOW for r in restarts)

    errors_in = sum(1 for t, _ in load.errors if in_kill_window(t))
    refusals_in = sum(1 for t, _, _ in load.refusals if in_kill_window(t))
    error_kinds = {}
    for _, kind in load.errors:
        error_kinds[kind] = error_kinds.get(kind, 0) + 1
    refusal_codes = {}
    for _, status, _ in load.refusals:
        refusal_codes[status] = refusal_codes.get(status, 0) + 1
    if len(load.refusals) > refusals_in:
        problems.append(f"{len(load.refusals) - refusals_in} non-2xx answers outside kill "
                        f"windows: {[r for r in load.refusals if not in_kill_window(r[0])][:3]}")

    wall = time.monotonic() - started
    print(f"store              {args.store}")
    print(f"seed               {args.seed}")
    print(f"cycles             {len(restarts)} kill -9 + restart "
          f"({hookfan.bind_retries} start retries)")
    print(f"webhooks acked     {len(load.acks)} "
          f"({len(load.acks) / max(wall, 1e-9):.0f}/s over the run)")
    print(f"log length         {len(final)} events")
    print(f"non-2xx answers    {len(load.refusals)} {refusal_codes} "
          f"({refusals_in} within kill windows)")
    print(f"connection errors  {len(load.errors)} {error_kinds} "
          f"({errors_in} within kill windows)")
    for subscriber in subscribers:
        print(f"{subscriber.name:18} {len(subscriber.events)} events, "
              f"{subscriber.reconnects()} reconnects")
    if recover_listen:
        print(f"kill -> listening  median {statistics.median(recover_listen):.3f}s "
              f"max {max(recover_listen):.3f}s")
    if recover_ack:
        print(f"kill -> first 202  median {statistics.median(recover_ack):.3f}s "
              f"max {max(recover_ack):.3f}s")
    if recover_streams:
        print(f"kill -> resumed    median {statistics.median(recover_streams):.3f}s "
              f"p90 {percentile(recover_streams, 0.9):.3f}s max {max(recover_streams):.3f}s "
              f"(every subscriber's stream accepted again)")
    if recover_all:
        print(f"kill -> delivered  median {statistics.median(recover_all):.3f}s "
              f"p90 {percentile(recover_all, 0.9):.3f}s max {max(recover_all):.3f}s "
              f"(that event at every subscriber)")
    if catch_up is not None:
        print(f"catch-up           {catch_up:.3f}s from the last post to every subscriber "
              f"holding the whole log")
    print(f"wall time          {wall:.1f}s")
    return problems


def main(argv):
    args = parse_args(argv)
    if args.store == "nats" and nats_server() is None:
        print("crash_soak: skipped: --store nats needs nats-server (PATH or /usr/sbin)")
        return 77
    workdir = Path(tempfile.mkdtemp(prefix="hookfan-soak-"))
    try:
        problems = run(args, workdir)
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        problems = [f"{type(error).__name__}: {error}"]
    for problem in problems:
        print(f"FAIL {problem}")
    passed = not problems
    print("PASS" if passed else f"FAIL (seed {args.seed})")
    if args.keep or not passed:
        print(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
