#!/usr/bin/python3
"""Runs the client examples (clients/python, clients/node) against the real
hookfan binary.

    client_examples_test.py HOOKFAN_BINARY [TEST ...]

TEST selects unittest tests or classes, e.g. PythonExamplesTest; default all.
Each test starts hookfan on a fresh data dir and OS-chosen ports, starts
examples, posts the Applivery fixtures and checks that every example printed
exactly the events hookfan accepted: the ids, types and sequences of the 202
answers, in order. Exit status: 0 pass; 1 fail; 77 when every test that ran
was skipped (Node's packages cannot be fetched).
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import unittest
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = sorted((REPO / "tests/fixtures/applivery").glob("*.json"))
TOKEN = "t0k"
TIMEOUT = 30  # seconds for any one step
HOOKFAN = ""  # the binary, from the command line

# npm's error codes for a registry it cannot reach.
NETWORK_ERRORS = {"ECONNREFUSED", "ECONNRESET", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT",
                  "ENETUNREACH", "EHOSTUNREACH"}


class Process:
    """A child process whose stdout lines and stderr are collected as they
    arrive, by one thread each."""

    def __init__(self, args, **popen_args):
        self.args = args
        self.popen = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, **popen_args)
        self.lines = []  # stdout
        self.log = []  # stderr
        self._changed = threading.Condition()
        self._readers = [threading.Thread(target=self._read, args=(stream, into), daemon=True)
                         for stream, into in ((self.popen.stdout, self.lines),
                                              (self.popen.stderr, self.log))]
        for reader in self._readers:
            reader.start()

    def _read(self, stream, into):
        for line in stream:
            with self._changed:
                into.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:  # end of output
            self._changed.notify_all()

    def wait_until(self, predicate):
        """Waits up to TIMEOUT until predicate() holds (checked on new output)
        or the process exits; returns predicate()."""
        with self._changed:
            self._changed.wait_for(lambda: predicate() or self.popen.poll() is not None,
                                   TIMEOUT)
            return predicate()

    def finish(self, sig=None):
        """Sends `sig` if given and waits for the exit; returns the status, or
        None when the process had to be killed after TIMEOUT."""
        if sig is not None:
            self.popen.send_signal(sig)
        try:
            status = self.popen.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            status = None
        for reader in self._readers:
            reader.join(TIMEOUT)
        return status

    def kill(self):
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()

    def report(self):
        """What the process printed, for a failure message."""
        return "\n".join([f"$ {' '.join(map(str, self.args))}", "stdout:", *self.lines,
                          "stderr:", *self.log])


class Hookfan(Process):
    """hookfan on `data_dir`; learns its addresses from the "hookfan listening"
    log line."""

    def __init__(self, data_dir, http="127.0.0.1:0", grpc="127.0.0.1:0"):
        super().__init__([HOOKFAN, "--data-dir", data_dir, "--http-listen", http,
                          "--grpc-listen", grpc, "--applivery-token", TOKEN],
                         stdin=subprocess.DEVNULL)
        self.http = self.grpc = None
        if not self.wait_until(self._listening):
            self.kill()
            raise AssertionError(f"hookfan did not start:\n{self.report()}")

    def _listening(self):
        for line in self.log:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # not a log entry (e.g. a sanitizer's report)
            if entry.get("msg") == "hookfan listening":
                self.http, self.grpc = entry["http"], entry["grpc"]
                return True
        return False

    def post(self, fixture, headers=None):
        """Posts a fixture as Applivery does (with `headers` added); returns
        the 202 answer."""
        request = urllib.request.Request(
            f"http://{self.http}/webhooks/applivery/{TOKEN}", data=fixture.read_bytes(),
            headers={"Content-Type": "application/json", **(headers or {})}, method="POST")
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            assert response.status == 202, f"{fixture.name}: HTTP {response.status}"
            return json.load(response)


def printed_events(example):
    """(sequence, id, type) of each JSON line an example printed."""
    return [(int(e["sequence"]), e["id"], e["type"]) for e in map(json.loads, example.lines)]


def accepted_events(answers):
    """(sequence, id, type) of each 202 answer."""
    return [(a["sequence"], a["id"], a["type"]) for a in answers]


class ExampleTestCase(unittest.TestCase):
    """Starts processes that are killed after the test, on a fresh data dir."""

    def setUp(self):
        self.data_dir = self.enterContext(tempfile.TemporaryDirectory(prefix="hookfan-clients-"))

    def start(self, process_type, *args, **kwargs):
        process = process_type(*args, **kwargs)
        self.addCleanup(process.kill)
        return process

    def start_hookfan(self, **addresses):
        return self.start(Hookfan, self.data_dir, **addresses)

    def assertExits0(self, example):
        self.assertEqual(example.finish(), 0, example.report())

    def assertPrinted(self, example, answers):
        self.assertEqual(printed_events(example), accepted_events(answers), example.report())

    def post_across_restart(self, hookfan, sig, examples):
        """Posts two fixtures and waits until every example printed them;
        stops hookfan with `sig` and starts it again on the same data and
        ports; posts the other three. Returns the 202 answers."""
        answers = [hookfan.post(f) for f in FIXTURES[:2]]
        for example in examples:
            self.assertTrue(example.wait_until(lambda: len(example.lines) == 2),
                            example.report())
        self.assertEqual(hookfan.finish(sig), 0 if sig == signal.SIGTERM else -sig,
                         hookfan.report())
        hookfan = self.start_hookfan(http=hookfan.http, grpc=hookfan.grpc)
        return answers + [hookfan.post(f) for f in FIXTURES[2:]]

    def assertResumed(self, subscriber, answers):
        """The subscriber reconnected and printed every answer once, in order."""
        self.assertExits0(subscriber)
        self.assertPrinted(subscriber, answers)
        self.assertTrue(any("UNAVAILABLE" in line for line in subscriber.log),
                        f"the subscriber never reconnected:\n{subscriber.report()}")

    def assertSnapshotThenChanges(self, start_subscriber):
        """start_subscriber(hookfan, count), a subscriber from a snapshot that
        exits after `count` events, prints the newest event of each (key,
        type), in sequence order, then the changes."""
        hookfan = self.start_hookfan()

        def anew(fixture):
            """The fixture sent anew: a new webhook, not a retry (a duplicate)."""
            path = Path(self.data_dir) / fixture.name
            path.write_bytes(fixture.read_bytes() + b"\n")
            return hookfan.post(path)

        first = [hookfan.post(f) for f in FIXTURES]
        again = anew(FIXTURES[0])  # supersedes first[0]
        subscriber = start_subscriber(hookfan, len(FIXTURES) + 1)
        self.assertTrue(subscriber.wait_until(lambda: len(subscriber.lines) == len(FIXTURES)),
                        subscriber.report())
        live = anew(FIXTURES[1])
        self.assertExits0(subscriber)
        # Every fixture has a key (a device or an organization).
        self.assertPrinted(subscriber, first[1:] + [again, live])


class PythonExamplesTest(ExampleTestCase):
    """clients/python: subscriber.py and group_consumer.py on stubs that
    generate.sh writes to a temporary directory."""

    @classmethod
    def setUpClass(cls):
        gen = cls.enterClassContext(tempfile.TemporaryDirectory(prefix="hookfan-pygen-"))
        subprocess.run([REPO / "clients/python/generate.sh", gen], check=True)
        cls.env = dict(os.environ, PYTHONPATH=gen, PYTHONDONTWRITEBYTECODE="1")

    def start_example(self, script, hookfan, *flags):
        return self.start(Process, ["/usr/bin/python3", REPO / "clients/python" / script,
                                    "--server", hookfan.grpc, "--json", *flags], env=self.env)

    def test_subscriber_and_group_consumer_print_every_accepted_event(self):
        hookfan = self.start_hookfan()
        subscriber = self.start_example("subscriber.py", hookfan, "--from", "earliest",
                                        "--max", "5")
        consumer = self.start_example("group_consumer.py", hookfan, "--group", "examples",
                                      "--from", "earliest", "--max", "5")
        answers = [hookfan.post(f) for f in FIXTURES]
        for example in (subscriber, consumer):
            self.assertExits0(example)
            self.assertPrinted(example, answers)

    def test_examples_resume_after_a_drain_without_gap_or_duplicate(self):
        # A draining hookfan tells the subscriber where to resume.
        hookfan = self.start_hookfan()
        subscriber = self.start_example("subscriber.py", hookfan, "--from", "earliest",
                                        "--max", "5")
        consumer = self.start_example("group_consumer.py", hookfan, "--group", "restart",
                                      "--from", "earliest")
        answers = self.post_across_restart(hookfan, signal.SIGTERM, [subscriber, consumer])
        self.assertResumed(subscriber, answers)
        # At least once: an event whose ack the restart cut off comes again.
        accepted = set(accepted_events(answers))
        self.assertTrue(consumer.wait_until(lambda: set(printed_events(consumer)) == accepted),
                        consumer.report())
        self.assertEqual(consumer.finish(signal.SIGINT), 130, consumer.report())

    def test_subscriber_names_each_events_trace(self):
        hookfan = self.start_hookfan()
        sent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        answer = hookfan.post(FIXTURES[0], {"traceparent": sent})
        subscriber = self.start(Process, ["/usr/bin/python3", REPO / "clients/python/subscriber.py",
                                          "--server", hookfan.grpc, "--from", "earliest", "--max",
                                          "1"], env=self.env)
        self.assertExits0(subscriber)
        self.assertEqual(len(subscriber.lines), 1, subscriber.report())
        self.assertIn(f" {answer['type']} ", subscriber.lines[0])
        self.assertTrue(subscriber.lines[0].endswith(" trace 4bf92f3577b34da6a3ce929d0e0e4736"),
                        subscriber.report())

    def test_subscriber_resumes_after_a_crash_without_gap_or_duplicate(self):
        # kill -9 sends no resume point: the subscriber resumes after the last
        # sequence it printed.
        hookfan = self.start_hookfan()
        subscriber = self.start_example("subscriber.py", hookfan, "--from", "earliest",
                                        "--max", "5")
        answers = self.post_across_restart(hookfan, signal.SIGKILL, [subscriber])
        self.assertResumed(subscriber, answers)

    def test_subscriber_from_a_snapshot_prints_the_newest_of_each_type_then_changes(self):
        self.assertSnapshotThenChanges(
            lambda hookfan, count: self.start_example("subscriber.py", hookfan, "--from",
                                                      "snapshot", "--max", str(count)))


class NodeExampleTest(ExampleTestCase):
    """clients/node: subscriber.js with its npm packages."""

    node_dir = REPO / "clients/node"

    def install_packages(self):
        """npm ci, unless node_modules holds every dependency already; skips the test when
        the npm registry cannot be reached."""
        dependencies = json.loads((self.node_dir / "package.json").read_text())["dependencies"]
        if all((self.node_dir / "node_modules" / name).is_dir() for name in dependencies):
            return
        npm = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=self.node_dir,
                             capture_output=True, text=True, timeout=300)
        if npm.returncode == 0:
            return
        code = re.search(r"npm (?:error|ERR!) code (\w+)", npm.stderr)
        if code and code.group(1) in NETWORK_ERRORS:
            self.skipTest(f"npm ci cannot reach the npm registry ({code.group(1)}); "
                          "the Node example needs @grpc/grpc-js from it")
        self.fail(f"npm ci failed in {self.node_dir}:\n{npm.stderr}")

    def start_subscriber(self, hookfan):
        return self.start(Process, ["node", self.node_dir / "subscriber.js",
                                    "--server", hookfan.grpc, "--from", "earliest",
                                    "--max", "5"])

    def test_subscriber_prints_every_accepted_event(self):
        self.install_packages()
        hookfan = self.start_hookfan()
        subscriber = self.start_subscriber(hookfan)
        answers = [hookfan.post(f) for f in FIXTURES]
        self.assertExits0(subscriber)
        self.assertPrinted(subscriber, answers)

    def test_subscriber_from_a_snapshot_prints_the_newest_of_each_type_then_changes(self):
        self.install_packages()
        self.assertSnapshotThenChanges(
            lambda hookfan, count: self.start(Process, [
                "node", self.node_dir / "subscriber.js", "--server", hookfan.grpc, "--from",
                "snapshot", "--max", str(count)]))

    def test_subscriber_resumes_after_a_crash_without_gap_or_duplicate(self):
        self.install_packages()
        hookfan = self.start_hookfan()
        subscriber = self.start_subscriber(hookfan)
        answers = self.post_across_restart(hookfan, signal.SIGKILL, [subscriber])
        self.assertResumed(subscriber, answers)

    def test_each_event_is_handled_in_a_span_continuing_its_trace(self):
        # The sender's trace, and one hookfan started: each event's handler
        # span (OpenTelemetry SDK, no exporter) is in that trace, a new span
        # whose parent is the event's.
        self.install_packages()
        hookfan = self.start_hookfan()
        sent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        answers = [hookfan.post(FIXTURES[0], {"traceparent": sent}), hookfan.post(FIXTURES[1])]
        self.assertEqual(answers[0]["traceparent"], sent)
        subscriber = self.start(Process, ["node", self.node_dir / "subscriber.js", "--server",
                                          hookfan.grpc, "--from", "earliest", "--max", "2"])
        self.assertExits0(subscriber)
        self.assertPrinted(subscriber, answers)
        handled = [re.fullmatch(r"subscriber\.js: event (\d+) handled in trace ([0-9a-f]{32}), "
                                r"span ([0-9a-f]{16}), parent ([0-9a-f]{16})", line)
                   for line in subscriber.log]
        handled = [m.groups() for m in handled if m]
        self.assertEqual(len(handled), 2, subscriber.report())
        for (sequence, trace_id, span_id, parent_id), answer in zip(handled, answers):
            self.assertEqual(int(sequence), answer["sequence"])
            self.assertEqual(trace_id, answer["traceparent"][3:35])
            self.assertEqual(parent_id, answer["traceparent"][36:52])
            self.assertNotEqual(span_id, parent_id)


def main():
    global HOOKFAN
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    HOOKFAN, names = sys.argv[1], sys.argv[2:]
    loader, module = unittest.defaultTestLoader, sys.modules[__name__]
    suite = (loader.loadTestsFromNames(names, module) if names
             else loader.loadTestsFromModule(module))
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    if not result.wasSuccessful():
        sys.exit(1)
    sys.exit(77 if result.testsRun == len(result.skipped) else 0)


if __name__ == "__main__":
    main()
