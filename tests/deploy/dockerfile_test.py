#!/usr/bin/python3
"""Reads deploy/Dockerfile statically (deploy/image-test, run by CI, builds
and runs it).

    dockerfile_test.py [HOOKFAN_BINARY HOOKFAN_TAIL_BINARY] [unittest arguments]

Checks that the build stage installs with CI's own .ci/deps.sh and builds
only what ships; that the runtime stage runs as a numeric non-root user, in
exec form, exposing both ports with the listen defaults and the data volume
to match. With the binaries, also that the runtime stage's Debian packages
provide every shared library they link (ldd, dpkg -S, and the packages'
dependencies as installed here). Exit status: 0 pass; 1 fail.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy/Dockerfile"
BINARIES = []  # from the command line
# Sanitizer runtimes: linked only by CI's ASan/UBSan build, never shipped.
SANITIZER_LIBS = re.compile(r"lib(asan|ubsan|tsan|lsan|hwasan)\.so")


def instructions(text):
    """[(INSTRUCTION, arguments)], continuation lines joined, comments dropped."""
    result, pending = [], ""
    for line in text.splitlines():
        if line.strip().startswith("#") or not line.strip():
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).strip().partition(" ")
        result.append((keyword.upper(), " ".join(args.split())))
        pending = ""
    return result


def stages(text):
    """(the instructions before the first FROM, [the instructions of each
    stage, FROM first])."""
    preamble, result = [], []
    for keyword, args in instructions(text):
        if keyword == "FROM":
            result.append([])
        (result[-1] if result else preamble).append((keyword, args))
    return preamble, result


def args_of(stage, keyword):
    return [args for k, args in stage if k == keyword]


def exec_form(args):
    """The arguments of an exec-form instruction (a JSON array), else None."""
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, list) else None


def runtime_packages(stage):
    """The package names of the stage's `apt-get install` commands."""
    packages = []
    for run in args_of(stage, "RUN"):
        for command in run.split("&&"):
            words = command.split()
            if "apt-get" in words and "install" in words:
                rest = words[words.index("install") + 1:]
                packages += [w for w in rest if not w.startswith("-")]
    return packages


class DockerfileTest(unittest.TestCase):
    def setUp(self):
        self.preamble, all_stages = stages(DOCKERFILE.read_text())
        self.build, self.prebuilt, self.binaries, self.runtime = all_stages

    def test_build_and_runtime_stages_are_debian_bookworm_slim(self):
        self.assertEqual(args_of(self.build, "FROM"), ["debian:bookworm-slim AS build"])
        self.assertEqual(args_of(self.runtime, "FROM"), ["debian:bookworm-slim"])

    def test_binaries_are_built_unless_prebuilt_ones_are_given(self):
        # BINARIES picks the stage the runtime copies from: "build" unless
        # told otherwise, or "prebuilt", the named build context that
        # deploy/image-test passes; both leave the two binaries in /out.
        self.assertEqual(args_of(self.preamble, "ARG"), ["BINARIES=build"])
        self.assertEqual(args_of(self.binaries, "FROM"), ["${BINARIES} AS binaries"])
        self.assertIn("install -D -t /out /build/server/hookfan /build/clients/hookfan-tail",
                      " ".join(args_of(self.build, "RUN")))
        self.assertEqual(args_of(self.prebuilt, "FROM"), ["scratch AS prebuilt"])
        self.assertEqual(args_of(self.prebuilt, "COPY"),
                         ["--from=hookfan-binaries hookfan hookfan-tail /out/"])
        image_test = (REPO / "deploy/image-test").read_text()
        self.assertIn('"BINARIES=prebuilt", "--build-context", f"hookfan-binaries={', image_test)

    def test_build_stage_installs_with_the_script_ci_uses(self):
        runs = args_of(self.build, "RUN")
        self.assertIn("bash .ci/deps.sh", runs)
        before = self.build[:self.build.index(("RUN", "bash .ci/deps.sh"))]
        copied = " ".join(args for k, args in before if k == "COPY")
        self.assertRegex(copied, r"(^|\s)(\.|\.ci/deps\.sh) ")
        # ... and CI does run that script: .ci/run -> scripts/test -> deps.sh.
        self.assertIn("./scripts/test", (REPO / ".ci/run").read_text())
        self.assertIn("bash .ci/deps.sh", (REPO / "scripts/test").read_text())

    def test_build_stage_builds_release_binaries_without_tests_or_bench(self):
        cmake = " ".join(r for r in args_of(self.build, "RUN") if "cmake" in r)
        for flag in ("-DCMAKE_BUILD_TYPE=Release", "-DHOOKFAN_BUILD_TESTS=OFF",
                     "-DHOOKFAN_BUILD_BENCH=OFF", "--target hookfan hookfan-tail"):
            self.assertIn(flag, cmake)

    def test_runtime_stage_gets_the_binaries_and_no_build_tools(self):
        copies = args_of(self.runtime, "COPY")
        self.assertEqual(copies, ["--from=binaries /out/hookfan /out/hookfan-tail /usr/local/bin/"])
        for package in runtime_packages(self.runtime):
            self.assertFalse(package.endswith("-dev") or package in ("build-essential", "cmake"),
                             package)
        self.assertNotIn("deps.sh", " ".join(args_of(self.runtime, "RUN")))

    def test_runs_as_numeric_non_root_user(self):
        user = args_of(self.runtime, "USER")[-1]
        self.assertRegex(user, r"^\d+(:\d+)?$")
        self.assertEqual(user, "65532:65532")

    def test_entrypoint_is_exec_form_running_the_copied_hookfan(self):
        [entrypoint] = args_of(self.runtime, "ENTRYPOINT")
        self.assertEqual(exec_form(entrypoint), ["/usr/local/bin/hookfan"], entrypoint)
        for cmd in args_of(self.runtime, "CMD"):  # a CMD, if any, must be exec form too
            self.assertIsNotNone(exec_form(cmd), cmd)

    def test_exposes_both_ports_and_listens_on_them_with_a_data_volume(self):
        exposed = " ".join(args_of(self.runtime, "EXPOSE")).split()
        self.assertEqual(sorted(exposed), ["8080", "9090"])
        env = dict(kv.split("=", 1) for e in args_of(self.runtime, "ENV") for kv in e.split())
        self.assertEqual(env["HOOKFAN_HTTP_LISTEN"], "0.0.0.0:8080")
        self.assertEqual(env["HOOKFAN_GRPC_LISTEN"], "0.0.0.0:9090")
        self.assertEqual(env["HOOKFAN_DATA_DIR"], "/var/lib/hookfan")
        self.assertEqual(args_of(self.runtime, "VOLUME"), ["/var/lib/hookfan"])

    def test_dockerignore_keeps_git_and_build_trees_out(self):
        ignored = (REPO / "deploy/Dockerfile.dockerignore").read_text().split()
        self.assertIn(".git", ignored)
        self.assertIn("build*", ignored)

    def test_runtime_packages_provide_every_linked_library(self):
        if not BINARIES:
            self.skipTest("no binaries given")
        if not shutil.which("dpkg-query"):
            self.skipTest("not a Debian system")
        libraries = linked_libraries(BINARIES)
        owners = owning_packages(libraries)
        packages = runtime_packages(self.runtime)
        closure = dependency_closure(packages)
        self.assertEqual([p for p in packages if p not in closure], [],
                         "runtime packages not installed here (misspelt?)")
        for library in libraries:
            with self.subTest(library=library):
                self.assertIn(library, owners, "no Debian package owns it")
                self.assertIn(owners[library], closure,
                              f"add {owners[library]} to the runtime stage's apt-get install")


def linked_libraries(binaries):
    """The shared libraries `ldd` resolves for the binaries (not the loader)."""
    ldd = subprocess.run(["ldd", *binaries], capture_output=True, text=True, check=True)
    found = re.findall(r"=> (/\S+)", ldd.stdout)
    missing = re.findall(r"(\S+) => not found", ldd.stdout)
    assert not missing, f"ldd cannot find {missing} here"
    return sorted({lib for lib in found if not SANITIZER_LIBS.search(lib)})


def owning_packages(libraries):
    """{library: package} by `dpkg -S`. With merged /usr a file is known to
    dpkg under /lib or /usr/lib, by its name or its symlink target: ask for all."""
    def spellings(path):
        real = os.path.realpath(path)
        for p in (path, real):
            yield p
            yield p.removeprefix("/usr") if p.startswith("/usr/lib/") else "/usr" + p
    candidates = {lib: list(dict.fromkeys(spellings(lib))) for lib in libraries}
    query = subprocess.run(["dpkg", "-S", *{p for c in candidates.values() for p in c}],
                           capture_output=True, text=True)
    by_path = {}
    for line in query.stdout.splitlines():
        package, _, path = line.partition(": ")
        if "diversion" not in package:
            by_path[path] = package.split(":")[0].split(",")[0].strip()
    return {lib: next(by_path[p] for p in c if p in by_path)
            for lib, c in candidates.items() if any(p in by_path for p in c)}


def dependency_closure(packages):
    """The packages and everything they depend on, as installed here."""
    status = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package}\t${Depends}, ${Pre-Depends}\t${Provides}\n"],
        capture_output=True, text=True, check=True).stdout
    depends, providers = {}, {}
    for line in status.splitlines():
        name, deps, provides = line.split("\t")
        # "a (>= 1) | b, c:any" -> every alternative: a, b, c
        depends[name] = [re.sub(r"[:(].*", "", alt).strip()
                         for dep in deps.split(",") for alt in dep.split("|") if alt.strip()]
        for virtual in provides.split(","):
            providers.setdefault(re.sub(r"\s*\(.*", "", virtual).strip(), []).append(name)
    closure, todo = set(), list(packages)
    while todo:
        name = todo.pop()
        for real in [name] if name in depends else providers.get(name, []):
            if real not in closure:
                closure.add(real)
                todo += depends[real]
    return closure


if __name__ == "__main__":
    args = sys.argv[1:]
    while args and os.path.isfile(args[0]):
        BINARIES.append(args.pop(0))
    unittest.main(argv=[sys.argv[0], *args])
