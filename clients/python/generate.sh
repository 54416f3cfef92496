#!/usr/bin/env bash
# Generates the Python messages and gRPC stubs of hookfan.v1 from proto/.
#
#   clients/python/generate.sh [OUT_DIR]      (default: clients/python/gen)
#
# Needs protoc and grpc_python_plugin (Debian: protobuf-compiler,
# protobuf-compiler-grpc). The stubs import as `hookfan.v1.broker_pb2` and
# `hookfan.v1.broker_pb2_grpc` with OUT_DIR on the Python path, and run on
# Debian's python3-grpcio and python3-protobuf.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$repo/clients/python/gen}
plugin=${GRPC_PYTHON_PLUGIN:-/usr/bin/grpc_python_plugin}

mkdir -p "$out"
protoc -I "$repo/proto" \
  --plugin=protoc-gen-grpc_python="$plugin" \
  --python_out="$out" --grpc_python_out="$out" \
  "$repo"/proto/hookfan/v1/*.proto
