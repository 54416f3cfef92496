#!/usr/bin/env bash
# Checks that .ci/proto-check fails on changes that break the contract's
# clients and passes compatible ones. Every case runs in a scratch git repo
# holding copies of proto/ and .ci/proto-check: on branch main, the first
# commit is proto/ as it is here, the second the case's change, so
# proto-check compares the change against today's contract.
# Exit status: 0 all cases pass; 1 a case failed; 77 skipped (buf cannot be
# installed, see .ci/proto-check).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
in_work() { git -C "$work" -c user.name=test -c user.email=test@example.invalid "$@"; }

mkdir "$work/.ci"
cp "$repo/.ci/proto-check" "$work/.ci/"
cp -r "$repo/proto" "$work/"
in_work init -q -b main
in_work add -A
in_work commit -q -m "contract as it is"
contract=$(in_work rev-parse HEAD)

failures=0

# expect NAME STATUS TEXT: runs proto-check; it must exit with STATUS and
# print TEXT.
expect() {
  local name=$1 want_status=$2 want_text=$3 status=0 out
  out=$("$work/.ci/proto-check" 2>&1) || status=$?
  if [ "$status" -eq 3 ]; then
    echo "SKIPPED: .ci/proto-check cannot install buf:"
    echo "$out"
    exit 77
  fi
  if [ "$status" -eq "$want_status" ] && grep -qF -- "$want_text" <<<"$out"; then
    echo "ok    $name"
  else
    echo "FAIL  $name: want exit $want_status and output with \"$want_text\"; got exit $status:"
    sed 's/^/      /' <<<"$out"
    failures=$((failures + 1))
  fi
}

# change FILE OLD NEW: on top of the contract, commits FILE (under
# proto/hookfan/v1) with its first OLD replaced by NEW.
change() {
  local file=$work/proto/hookfan/v1/$1 old=$2 new=$3 text
  in_work reset -q --hard "$contract"
  text=$(<"$file")
  if [[ $text != *"$old"* ]]; then
    echo "FAIL  this test is out of date: $1 has no \"$old\""
    exit 1
  fi
  printf '%s\n' "${text/"$old"/"$new"}" >"$file"
  in_work commit -q -am "change $1"
}

expect "a single commit has nothing to compare against" 0 "buf breaking: skipped"

change event.proto "  uint64 sequence = 2;" ""
expect "deleting a field breaks" 1 \
  'Previously present field "2" with name "sequence" on message "Event" was deleted'

change event.proto "uint64 sequence = 2;" "uint64 sequence = 99;"
expect "renumbering a field breaks" 1 \
  'Previously present field "2" with name "sequence" on message "Event" was deleted'

change event.proto "uint64 sequence = 2;" "string sequence = 2;"
expect "changing a field's type breaks" 1 \
  'Field "2" with name "sequence" on message "Event" changed type from "uint64" to "string"'

change broker.proto "  rpc GetEvent(GetEventRequest) returns (GetEventResponse);" ""
expect "deleting a method breaks" 1 \
  'Previously present RPC "GetEvent" on service "EventBroker" was deleted'

change event.proto "  bytes data = 14;" "  bytes data = 14;
  // Added later: old clients skip it.
  string tenant = 99;"
expect "adding a field is compatible" 0 "== buf breaking proto/ against main~1"

change event.proto "  bytes data = 14;" "  bytes data = 14;
  // Breaks the lint rule for field names.
  string tenantName = 99;"
expect "a lint error fails the check" 1 'Field name "tenantName" should be lower_snake_case'

if [ "$failures" -gt 0 ]; then
  echo "$failures case(s) failed"
  exit 1
fi
echo "all cases pass"
