#!/usr/bin/env bash
# The test command (npm test): build, run the native test tables (plain, under
# AddressSanitizer+UBSan+LeakSanitizer, and the threaded engines under
# ThreadSanitizer) and the vitest suite, then close with every failed and
# skipped test named and one line "N passed, N failed, N skipped".
# test/native-runner.mjs counts a native binary that crashes, exits non-zero or
# prints a sanitizer report as failed; test/summary.mjs adds the parts up. The
# exit status is non-zero whenever anything failed.
set -u
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export FAULTLAB_SKIP_LOG="$tmp/skips.jsonl"
: >"$FAULTLAB_SKIP_LOG"
failed_parts=()
passed_parts=()

echo "== build"
if ! npm run --silent build; then
  echo "build failed"
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi

# The NBD interop tests (test/nbd-interop.test.ts) use libnbd's tools; as root
# they are installed when missing. A failed install is not fatal: those tests
# then skip, each with its reason.
if [ "$(id -u)" = 0 ] && ! { command -v nbdinfo && command -v nbdcopy && command -v nbdkit; } >/dev/null 2>&1; then
  echo "== installing nbdkit and libnbd-bin (apt-get)"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nbdkit libnbd-bin; }; then
    echo "could not install nbdkit and libnbd-bin: the NBD interop tests skip by name"
  fi
fi

echo "== native tests (plain, AddressSanitizer+UBSan+LeakSanitizer, and the threaded engines under ThreadSanitizer)"
native_reports=()
for variant in "plain::tests" "asan:SANITIZE=1:tests" "tsan:SANITIZE=thread:tsan-tests"; do
  IFS=: read -r label flags target <<<"$variant"
  if ! make -s -C native $flags "$target"; then
    failed_parts+=(--failed-part "native ($label): the test binaries did not build")
    continue
  fi
  read -r -a bins <<<"$(make -s -C native $flags "list-$target")"
  node test/native-runner.mjs --label "$label" --json "$tmp/native-$label.json" "${bins[@]/#/native/}"
  native_reports+=(--native "$tmp/native-$label.json")
done

echo "== formatting (prettier --check over the TypeScript; npm run format fixes it)"
if npx prettier --check "**/*.{ts,mjs}"; then
  passed_parts+=(--passed-part "formatting: prettier --check")
else
  failed_parts+=(--failed-part "formatting: prettier --check found files to format (npm run format)")
fi

echo "== vitest"
npx vitest run --reporter=default --reporter=json --outputFile.json="$tmp/vitest.json"
vitest_rc=$?
[ -s "$tmp/vitest.json" ] || failed_parts+=(--failed-part "vitest: no report (exit $vitest_rc)")

echo "== summary"
node test/summary.mjs "${native_reports[@]}" --vitest "$tmp/vitest.json" --vitest-exit "$vitest_rc" --skips "$FAULTLAB_SKIP_LOG" "${passed_parts[@]}" "${failed_parts[@]}"
