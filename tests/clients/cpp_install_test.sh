#!/usr/bin/env bash
# The C++ client library installs and is usable from another project:
# configure hookfan with only the client parts, install it into a temporary
# prefix, build clients/cpp/example against it with find_package(hookfan),
# and run it against a live hookfan.
#   cpp_install_test.sh SOURCE_DIR HOOKFAN_BINARY
set -euo pipefail
src=$1 hookfan=$2
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
pid=0

cmake -S "$src" -B "$work/build" -G Ninja -DHOOKFAN_BUILD_SERVER=OFF \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$work/prefix" >/dev/null
cmake --build "$work/build" -j2 --target install >/dev/null
test -f "$work/prefix/lib/cmake/hookfan/hookfanConfig.cmake"
test -f "$work/prefix/include/hookfan/subscriber.h"
test -f "$work/prefix/include/hookfan/trace_context.h"
test -f "$work/prefix/include/hookfan/v1/broker.grpc.pb.h"

cmake -S "$src/clients/cpp/example" -B "$work/example" -G Ninja \
  -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/example" >/dev/null

"$hookfan" --data-dir "$work/data" --http-listen 127.0.0.1:0 --grpc-listen 127.0.0.1:0 \
  --applivery-token t 2>"$work/log" &
pid=$!
for _ in $(seq 100); do
  grep -q '"hookfan listening"' "$work/log" && break
  sleep 0.1
done
http=$(grep '"hookfan listening"' "$work/log" | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["http"])')
grpc=$(grep '"hookfan listening"' "$work/log" | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["grpc"])')
curl -fsS -X POST -H 'Content-Type: application/json' \
  -H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' \
  --data-binary "@$src/tests/fixtures/applivery/emm_device_enrolled.json" \
  "http://$http/webhooks/applivery/t" >/dev/null

out=$(timeout 30 "$work/example/print_devices" "$grpc" 1)
echo "print_devices printed: $out"
[[ $out == "1 applivery.device.enrolled devices/5f634c11034824062256e38c trace 4bf92f3577b34da6a3ce929d0e0e4736" ]]
