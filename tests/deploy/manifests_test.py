#!/usr/bin/python3
"""Checks the Kubernetes overlays (deploy/k8s) against issue #6's list.

    manifests_test.py [HOOKFAN_BINARY] [unittest arguments, e.g. a test class]

Renders every overlay with `deploy/check --render-only` (kustomize) and reads
the result with PyYAML. Both overlays: every container has readiness and
liveness probes, resource requests and limits, and a locked-down security
context; hookfan's grace period outlasts its drain timeout; the Ingress
routes only /webhooks/; NetworkPolicies guard both ports; the gRPC Services
(one headless) exist. single: one StatefulSet replica on a PVC. cluster: 3
replicas, an HPA, a PDB, and a 3-server NATS JetStream whose nats.conf
`nats-server -t` accepts and which forms a cluster on loopback. With
HOOKFAN_BINARY, the ConfigMap's sources.yaml is run for real: hookfan starts
on it and accepts a webhook, and refuses to start on the placeholder (empty)
secret; and two hookfans with the cluster Deployment's arguments share one
log on that loopback NATS cluster.
Exit status: 0 pass; 1 fail; 77 skipped (no kustomize, see deploy/check).
"""

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "hookfan"
HOOKFAN = ""  # the binary, from the command line
RENDERED = {}  # overlay name -> list of objects
WORKLOADS = ("Deployment", "StatefulSet")


def render():
    """Fills RENDERED; exits 77 when deploy/check cannot render here."""
    out = tempfile.mkdtemp()
    try:
        check = subprocess.run([REPO / "deploy/check", "--render-only", "-o", out],
                               capture_output=True, text=True)
        print(check.stdout, end="")
        if check.returncode == 77:
            sys.exit(77)
        if check.returncode != 0:
            sys.exit(f"deploy/check --render-only failed:\n{check.stderr}")
        for path in sorted(Path(out).glob("*.yaml")):
            RENDERED[path.stem] = [o for o in yaml.safe_load_all(path.read_text()) if o]
    finally:
        shutil.rmtree(out)


def find(objects, kind, name=None):
    return [o for o in objects
            if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objects, kind, name):
    found = find(objects, kind, name)
    assert len(found) == 1, f"want one {kind}/{name}, found {len(found)}"
    return found[0]


def hookfan_workload(objects):
    found = [o for o in objects if o["kind"] in WORKLOADS and o["metadata"]["name"] == "hookfan"]
    assert len(found) == 1, f"want one workload named hookfan, found {len(found)}"
    return found[0]


def pod_labels(workload, field="labels"):
    """The labels (or another metadata field) of a workload's pod template."""
    return workload["spec"]["template"]["metadata"][field]


def container(workload, name):
    return next(c for c in workload["spec"]["template"]["spec"]["containers"] if c["name"] == name)


def env(c):
    return {e["name"]: e.get("value") for e in c.get("env", [])}


def seconds(duration):
    """An abseil duration flag ("30s", "1m30s", "500ms") in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|ns|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"not a duration: {duration}"
    return sum(float(n) * units[u] for n, u in parts)


def secret_files(node):
    """The paths of every {file: PATH} secret reference in a sources file."""
    if isinstance(node, dict):
        if set(node) == {"file"}:
            yield node["file"]
        for value in node.values():
            yield from secret_files(value)
    elif isinstance(node, list):
        for value in node:
            yield from secret_files(value)


def wait_for_line(process, log, marker, timeout=30):
    """The first JSON log line containing `marker`, or None if the process
    exits or `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if marker in line:
                return json.loads(line)
        time.sleep(0.05)
    return None


def free_ports(count):
    """Loopback TCP ports the OS says are free now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


class BothOverlaysTest(unittest.TestCase):
    """What every overlay must satisfy."""

    def setUp(self):
        self.assertEqual(sorted(RENDERED), ["cluster", "single"])

    def containers(self, objects):
        """(workload, pod spec, container) of every workload's containers."""
        for w in objects:
            if w["kind"] in WORKLOADS:
                spec = w["spec"]["template"]["spec"]
                for c in spec.get("initContainers", []) + spec["containers"]:
                    yield f"{w['kind']}/{w['metadata']['name']}/{c['name']}", spec, c

    def test_every_container_has_readiness_and_liveness_probes(self):
        for overlay, objects in RENDERED.items():
            with self.subTest(overlay=overlay):
                for where, _, c in self.containers(objects):
                    self.assertIn("readinessProbe", c.keys(), where)
                    self.assertIn("livenessProbe", c.keys(), where)

    def test_every_container_has_resource_requests_and_limits(self):
        for overlay, objects in RENDERED.items():
            with self.subTest(overlay=overlay):
                for where, _, c in self.containers(objects):
                    for bound in ("requests", "limits"):
                        self.assertEqual(set(c.get("resources", {}).get(bound, {})),
                                         {"cpu", "memory"}, f"{where}: resources.{bound}")

    def test_every_container_is_locked_down(self):
        # Container settings win over the pod's where both exist.
        for overlay, objects in RENDERED.items():
            with self.subTest(overlay=overlay):
                for where, spec, c in self.containers(objects):
                    pod, own = spec.get("securityContext", {}), c.get("securityContext", {})
                    effective = {**pod, **own}
                    self.assertIs(effective.get("runAsNonRoot"), True, where)
                    self.assertGreater(effective.get("runAsUser", 0), 0, where)
                    self.assertEqual(effective.get("seccompProfile"),
                                     {"type": "RuntimeDefault"}, where)
                    self.assertIs(own.get("readOnlyRootFilesystem"), True, where)
                    self.assertIs(own.get("allowPrivilegeEscalation"), False, where)
                    self.assertEqual(own.get("capabilities", {}).get("drop"), ["ALL"], where)
                    self.assertNotIn("add", own.get("capabilities", {}), where)

    def test_grace_period_outlasts_the_drain_timeout(self):
        for overlay, objects in RENDERED.items():
            with self.subTest(overlay=overlay):
                w = hookfan_workload(objects)
                drain = seconds(env(container(w, "hookfan"))["HOOKFAN_DRAIN_TIMEOUT"])
                grace = w["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
                self.assertGreater(grace, drain)

    def test_hookfan_probes_use_grpc_health_and_readyz(self):
        for overlay, objects in RENDERED.items():
            with self.subTest(overlay=overlay):
                c = container(hookfan_workload(objects), "hookfan")
                self.assertEqual(c["livenessProbe"]["grpc"]["port"], 9090)
                self.assertEqual(c["readinessProbe"]["httpGet"]["path"], "/readyz")
                self.assertEqual(c["startupProbe"]["httpGet"]["path"], "/healthz")

    def test_hookfan_pods_are_scraped_by_prometheus(self):
        for overlay, objects in RENDERED.items():
            with self.subTest(overlay=overlay):
                annotations = pod_labels(hookfan_workload(objects), "annotations")
                self.assertEqual(annotations["prometheus.io/scrape"], "true")
                self.assertEqual(annotations["prometheus.io/port"], "8080")
                self.assertEqual(annotations["prometheus.io/path"], "/metrics")

    def test_sources_and_secrets_are_mounted_where_sources_yaml_says(self):
        for overlay, objects in RENDERED.items():
            with self.subTest(overlay=overlay):
                w = hookfan_workload(objects)
                c, spec = container(w, "hookfan"), w["spec"]["template"]["spec"]
                volumes = {v["name"]: v for v in spec["volumes"]}
                mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
                sources_path = env(c)["HOOKFAN_SOURCES"]
                self.assertEqual(sources_path, "/etc/hookfan/sources.yaml")
                config_map = volumes[mounts[sources_path]["name"]]["configMap"]["name"]
                self.assertTrue(config_map.startswith("hookfan-sources"), config_map)
                secret = volumes[mounts["/etc/hookfan/secrets"]["name"]]["secret"]["secretName"]
                self.assertTrue(secret.startswith("hookfan-secrets"), secret)
                self.assertIn("emptyDir", volumes[mounts["/tmp"]["name"]])
                self.assertIn("/var/lib/hookfan", mounts)
                # Every secret file sources.yaml names is a key of that Secret.
                sources = one(objects, "ConfigMap", config_map)["data"]["sources.yaml"]
                keys = set(one(objects, "Secret", secret)["data"])
                files = list(secret_files(yaml.safe_load(sources)))
                self.assertTrue(files)
                for f in files:
                    self.assertTrue(f.startswith("/etc/hookfan/secrets/"), f)
                    self.assertIn(f.removeprefix("/etc/hookfan/secrets/"), keys)

    def test_ingress_routes_only_webhooks_to_the_http_service(self):
        for overlay, objects in RENDERED.items():
            with self.subTest(overlay=overlay):
                ingresses = find(objects, "Ingress")
                self.assertEqual(len(ingresses), 1)
                spec = ingresses[0]["spec"]
                self.assertEqual(spec["ingressClassName"], "nginx")
                self.assertNotIn("defaultBackend", spec)
                self.assertTrue(spec["tls"][0]["hosts"] and spec["tls"][0]["secretName"])
                paths = [p for rule in spec["rules"] for p in rule["http"]["paths"]]
                self.assertEqual([(p["path"], p["pathType"]) for p in paths],
                                 [("/webhooks/", "Prefix")])
                self.assertEqual(paths[0]["backend"]["service"],
                                 {"name": "hookfan-http", "port": {"name": "http"}})

    def test_network_policy_admits_only_the_named_namespaces_per_port(self):
        for overlay, objects in RENDERED.items():
            with self.subTest(overlay=overlay):
                labels = pod_labels(hookfan_workload(objects))
                policies = [p for p in find(objects, "NetworkPolicy")
                            if selects(p["spec"]["podSelector"]["matchLabels"], labels)]
                self.assertEqual(len(policies), 1)
                spec = policies[0]["spec"]
                self.assertEqual(spec["policyTypes"], ["Ingress"])
                allowed = {}  # port -> namespace selectors allowed to reach it
                for rule in spec["ingress"]:
                    self.assertTrue(rule.get("from") and rule.get("ports"), "an open rule")
                    for port in rule["ports"]:
                        allowed.setdefault(port["port"], []).extend(
                            f["namespaceSelector"]["matchLabels"] for f in rule["from"])
                self.assertEqual(allowed, {
                    8080: [{"kubernetes.io/metadata.name": "ingress-nginx"},
                           {"kubernetes.io/metadata.name": "monitoring"}],
                    9090: [{"hookfan.dev/client": "true"}],
                })

    def test_services_expose_http_grpc_and_headless_grpc(self):
        for overlay, objects in RENDERED.items():
            with self.subTest(overlay=overlay):
                labels = pod_labels(hookfan_workload(objects))
                want = {"hookfan-http": ("ClusterIP", 8080, "http", None),
                        "hookfan-grpc": ("ClusterIP", 9090, "grpc", "grpc"),
                        "hookfan-grpc-headless": ("None", 9090, "grpc", "grpc")}
                for name, (kind, port, port_name, protocol) in want.items():
                    spec = one(objects, "Service", name)["spec"]
                    self.assertTrue(selects(spec["selector"], labels), name)
                    if kind == "None":
                        self.assertEqual(spec["clusterIP"], "None", name)
                    else:
                        self.assertEqual(spec.get("type", "ClusterIP"), kind, name)
                        self.assertNotIn("clusterIP", spec, name)
                    [p] = spec["ports"]
                    self.assertEqual((p["port"], p["name"], p.get("appProtocol")),
                                     (port, port_name, protocol), name)

    def test_everything_is_in_the_hookfan_namespace(self):
        for overlay, objects in RENDERED.items():
            with self.subTest(overlay=overlay):
                for o in objects:
                    if o["kind"] == "Namespace":
                        self.assertEqual(o["metadata"]["name"], NAMESPACE)
                        self.assertEqual(o["metadata"]["labels"]
                                         ["pod-security.kubernetes.io/enforce"], "restricted")
                    else:
                        self.assertEqual(o["metadata"].get("namespace"), NAMESPACE,
                                         f"{o['kind']}/{o['metadata']['name']}")


class SingleOverlayTest(unittest.TestCase):
    def test_one_statefulset_replica_keeps_its_data_on_a_claim(self):
        objects = RENDERED["single"]
        w = one(objects, "StatefulSet", "hookfan")
        self.assertEqual(w["spec"]["replicas"], 1)
        self.assertEqual(w["spec"]["serviceName"], "hookfan-grpc-headless")
        [claim] = w["spec"]["volumeClaimTemplates"]
        self.assertEqual(claim["spec"]["accessModes"], ["ReadWriteOnce"])
        data = next(m for m in container(w, "hookfan")["volumeMounts"]
                    if m["mountPath"] == "/var/lib/hookfan")
        self.assertEqual(data["name"], claim["metadata"]["name"])
        names = [v["name"] for v in w["spec"]["template"]["spec"]["volumes"]]
        self.assertNotIn(claim["metadata"]["name"], names, "a pod volume hides the claim")
        self.assertEqual(find(objects, "Deployment"), [])

    def test_has_no_disruption_budget(self):
        # With one replica a budget only blocks drains (see the overlay).
        self.assertEqual(find(RENDERED["single"], "PodDisruptionBudget"), [])


class ClusterOverlayTest(unittest.TestCase):
    def setUp(self):
        self.objects = RENDERED["cluster"]

    def test_three_replicas_on_the_nats_store_spread_over_nodes(self):
        w = one(self.objects, "Deployment", "hookfan")
        self.assertEqual(w["spec"]["replicas"], 3)
        self.assertEqual(w["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0)
        self.assertIn("--store=nats://nats-0.nats:4222,nats://nats-1.nats:4222,"
                      "nats://nats-2.nats:4222", container(w, "hookfan")["args"])
        spread = w["spec"]["template"]["spec"]["topologySpreadConstraints"]
        self.assertIn("kubernetes.io/hostname", [s["topologyKey"] for s in spread])
        self.assertEqual(find(self.objects, "StatefulSet", "hookfan"), [])

    def test_autoscales_on_cpu_from_3_to_10(self):
        hpa = one(self.objects, "HorizontalPodAutoscaler", "hookfan")
        self.assertEqual(hpa["apiVersion"], "autoscaling/v2")
        spec = hpa["spec"]
        self.assertEqual(spec["scaleTargetRef"],
                         {"apiVersion": "apps/v1", "kind": "Deployment", "name": "hookfan"})
        self.assertEqual((spec["minReplicas"], spec["maxReplicas"]), (3, 10))
        [metric] = spec["metrics"]
        self.assertEqual(metric["resource"]["name"], "cpu")
        self.assertEqual(metric["resource"]["target"],
                         {"type": "Utilization", "averageUtilization": 70})

    def test_disruption_budgets_keep_two_of_each(self):
        labels = pod_labels(one(self.objects, "Deployment", "hookfan"))
        pdb = one(self.objects, "PodDisruptionBudget", "hookfan")["spec"]
        self.assertEqual(pdb["minAvailable"], 2)
        self.assertTrue(selects(pdb["selector"]["matchLabels"], labels))
        nats = one(self.objects, "PodDisruptionBudget", "nats")["spec"]
        self.assertEqual(nats["maxUnavailable"], 1)

    def test_nats_is_three_jetstream_servers_on_their_own_volumes(self):
        nats = one(self.objects, "StatefulSet", "nats")
        self.assertEqual(nats["spec"]["replicas"], 3)
        self.assertEqual(nats["spec"]["serviceName"], "nats")
        self.assertEqual(container(nats, "nats")["image"], "nats:2.9-alpine")
        [claim] = nats["spec"]["volumeClaimTemplates"]
        mounts = {m["mountPath"]: m["name"] for m in container(nats, "nats")["volumeMounts"]}
        self.assertEqual(mounts["/data"], claim["metadata"]["name"])
        service = one(self.objects, "Service", "nats")["spec"]
        self.assertEqual(service["clusterIP"], "None")
        self.assertIs(service["publishNotReadyAddresses"], True)
        conf = self.nats_conf()
        self.assertRegex(conf, r"jetstream\s*\{[^}]*store_dir:\s*/data")
        for i in range(3):
            self.assertIn(f"nats://nats-{i}.nats:6222", conf)

    def test_hookfan_streams_fit_in_max_file_store_and_it_in_the_volume(self):
        # #25 item 7: hookfan's streams take --retention-max-bytes for the
        # events, a quarter more for AppendOnce keys, an eighth for dead
        # letters, a sixty-fourth for the device directory and a quarter for
        # the latest view (NatsOptions): 105/64 of it. JetStream's store must hold them, and the volume the
        # store.
        args = container(hookfan_workload(self.objects), "hookfan")["args"]
        [limit] = [int(a.split("=", 1)[1]) for a in args
                   if a.startswith("--retention-max-bytes=")]
        store = re.search(r"max_file_store:\s*(\d+)GB", self.nats_conf())
        self.assertIsNotNone(store, "nats.conf sets no max_file_store in GB")
        max_file_store = int(store.group(1)) << 30  # nats-server's GB is 1024^3
        self.assertLess(limit * 105 // 64, max_file_store)
        nats = one(self.objects, "StatefulSet", "nats")
        [claim] = nats["spec"]["volumeClaimTemplates"]
        volume = claim["spec"]["resources"]["requests"]["storage"]
        self.assertTrue(volume.endswith("Gi"), volume)
        self.assertLess(max_file_store, int(volume[:-2]) << 30)

    def test_nats_server_accepts_nats_conf(self):
        server = shutil.which("nats-server")
        if server is None:
            self.skipTest("nats-server is not installed")
        with tempfile.TemporaryDirectory() as tmp:
            conf = Path(tmp, "nats.conf")
            conf.write_text(self.nats_conf().replace("/data", f"{tmp}/data"))
            test = subprocess.run([server, "-t", "-c", conf], capture_output=True, text=True,
                                  env={**os.environ, "POD_NAME": "nats-0"}, timeout=30)
            self.assertEqual(test.returncode, 0, test.stdout + test.stderr)

    def test_nats_conf_forms_a_jetstream_cluster(self):
        # The three servers of nats.conf on loopback ports (the only change),
        # until each one's /healthz says JetStream is up with a meta leader.
        server = shutil.which("nats-server")
        if server is None:
            self.skipTest("nats-server is not installed")
        tmp = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, tmp)
        ports = free_ports(9)
        client, route, monitor = ports[0:3], ports[3:6], ports[6:9]
        healthy = set()
        for i in range(3):
            conf = self.nats_conf()
            for old, new in [("0.0.0.0:4222", f"127.0.0.1:{client[i]}"),
                             ("0.0.0.0:8222", f"127.0.0.1:{monitor[i]}"),
                             ("0.0.0.0:6222", f"127.0.0.1:{route[i]}"),
                             ("store_dir: /data", f"store_dir: {tmp}/data{i}"),
                             *[(f"nats://nats-{j}.nats:6222", f"nats://127.0.0.1:{route[j]}")
                               for j in range(3)]]:
                self.assertIn(old, conf)
                conf = conf.replace(old, new)
            (tmp / f"nats{i}.conf").write_text(conf)
            with open(tmp / f"nats{i}.log", "w") as log:
                process = subprocess.Popen(
                    [server, "-c", tmp / f"nats{i}.conf"], stdin=subprocess.DEVNULL,
                    stdout=log, stderr=log, env={**os.environ, "POD_NAME": f"nats-{i}"})
            self.addCleanup(process.wait, 30)
            self.addCleanup(process.terminate)
        deadline = time.monotonic() + 60
        while len(healthy) < 3 and time.monotonic() < deadline:
            time.sleep(0.5)
            for i in set(range(3)) - healthy:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{monitor[i]}/healthz",
                                           timeout=5).close()
                    healthy.add(i)
                except OSError:
                    pass  # not up yet, or 503 until a meta leader is elected
        logs = "\n".join((tmp / f"nats{i}.log").read_text() for i in range(3))
        self.assertEqual(healthy, {0, 1, 2}, logs[-3000:])
        if HOOKFAN:
            self.two_replicas_share_one_log(tmp, client)

    def two_replicas_share_one_log(self, tmp, client_ports):
        # Two hookfans with the Deployment's own arguments (servers moved to
        # loopback) on the cluster above: the stream is created with three
        # replicas and a webhook posted to either lands in one log.
        args = container(hookfan_workload(self.objects), "hookfan")["args"]
        for i in range(3):
            args = [a.replace(f"nats-{i}.nats:4222", f"127.0.0.1:{client_ports[i]}") for a in args]
        replicas = []
        for r in range(2):
            log = tmp / f"hookfan{r}.log"
            with log.open("w") as stderr:
                process = subprocess.Popen(
                    [HOOKFAN, *args, "--http-listen", "127.0.0.1:0", "--grpc-listen",
                     "127.0.0.1:0", "--data-dir", tmp / f"hookfan{r}", "--applivery-token",
                     "cluster-token", "--applivery-dedup-window", "0"],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)
            self.addCleanup(lambda p=process: p.poll() is None and p.kill())
            replicas.append((process, log))
        fixture = (REPO / "tests/fixtures/applivery/emm_device_enrolled.json").read_bytes()
        for r, (process, log) in enumerate(replicas):
            listening = wait_for_line(process, log, '"hookfan listening"')
            self.assertIsNotNone(listening, log.read_text())
            self.assertIn("stream HOOKFAN", listening["store"])
            request = urllib.request.Request(
                f"http://{listening['http']}/webhooks/applivery/cluster-token", data=fixture,
                headers={"Content-Type": "application/json"}, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    self.assertEqual(response.status, 202)
                    self.assertEqual(json.loads(response.read())["sequence"], r + 1)
            except urllib.error.HTTPError as e:
                self.fail(f"{e.code} {e.read()}: {log.read_text()}")
        for process, log in replicas:
            process.send_signal(signal.SIGTERM)
            self.assertEqual(process.wait(timeout=60), 0, log.read_text())
        # Whichever replica came first created it (both may have: creating
        # an identical stream twice is no error).
        created = [json.loads(line) for _, log in replicas for line in log.read_text().splitlines()
                   if '"created JetStream stream"' in line]
        self.assertGreaterEqual(len(created), 1)
        self.assertEqual({c["replicas"] for c in created}, {3})

    def nats_conf(self):
        [config] = [o for o in find(self.objects, "ConfigMap")
                    if o["metadata"]["name"].startswith("nats-config")]
        return config["data"]["nats.conf"]


class SourcesConfigMapTest(unittest.TestCase):
    """The single overlay's ConfigMap and container environment, given to the
    real binary, with the Secret's files under a temporary directory."""

    def setUp(self):
        if not HOOKFAN:
            self.skipTest("no hookfan binary given")
        objects = RENDERED["single"]
        self.tmp = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.tmp)
        self.secrets = self.tmp / "secrets"
        self.secrets.mkdir()
        [config] = [o for o in find(objects, "ConfigMap")
                    if o["metadata"]["name"].startswith("hookfan-sources")]
        sources = config["data"]["sources.yaml"].replace("/etc/hookfan/secrets", str(self.secrets))
        (self.tmp / "sources.yaml").write_text(sources)
        self.env = {**os.environ, **env(container(hookfan_workload(objects), "hookfan")),
                    "HOOKFAN_SOURCES": str(self.tmp / "sources.yaml")}
        [secret] = find(objects, "Secret")
        self.placeholder = {k: base64.b64decode(v) for k, v in secret["data"].items()}

    def start(self):
        """Starts hookfan; returns (process, its stderr file)."""
        log = self.tmp / "hookfan.log"
        with log.open("w") as stderr:
            process = subprocess.Popen(
                [HOOKFAN, "--http-listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0",
                 "--data-dir", self.tmp / "data"],
                env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)
        self.addCleanup(lambda: process.poll() is None and process.kill())
        return process, log

    def test_hookfan_serves_applivery_with_the_configmap(self):
        token = "a-long-random-token"
        (self.secrets / "applivery-token").write_text(token + "\n")
        process, log = self.start()
        listening = wait_for_line(process, log, '"hookfan listening"')
        self.assertIsNotNone(listening, log.read_text())
        http = listening["http"]
        fixture = REPO / "tests/fixtures/applivery/emm_device_enrolled.json"
        request = urllib.request.Request(
            f"http://{http}/webhooks/applivery/{token}", data=fixture.read_bytes(),
            headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            self.assertEqual(response.status, 202)
        process.send_signal(signal.SIGTERM)
        self.assertEqual(process.wait(timeout=60), 0, log.read_text())

    def test_the_placeholder_secret_stops_startup(self):
        for key, value in self.placeholder.items():
            (self.secrets / key).write_bytes(value)
        process, log = self.start()
        self.assertNotEqual(process.wait(timeout=30), 0)
        self.assertRegex(log.read_text(), r'secret file .*/applivery-token\\*" is empty')


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and os.path.isfile(args[0]):
        HOOKFAN = args.pop(0)
    render()
    unittest.main(argv=[sys.argv[0], *args])
