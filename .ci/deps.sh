#!/usr/bin/env bash
# Installs the Debian packages hookfan needs to build, test and run.
# Used by .ci/run and by deploy/Dockerfile's build stage. Idempotent.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates curl
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libcpp-httplib-dev nlohmann-json3-dev libabsl-dev
  libgtest-dev libgmock-dev
  libsqlite3-dev sqlite3 libssl-dev zlib1g-dev
  libyaml-cpp-dev libnats-dev nats-server libcli11-dev prometheus-cpp-dev libplist-dev
  libhiredis-dev redis-server
  python3 python3-yaml gnuplot-nox prometheus
  python3-grpcio python3-protobuf python3-h2 nodejs
)
# npm for the Node client example and buf: Debian's nodejs needs the npm
# package; NodeSource's nodejs bundles npm and conflicts with that package.
command -v npm >/dev/null || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
