#!/usr/bin/env bash
# The test command (npm test): build, run the native C tests (plain, under
# AddressSanitizer+UBSan, and those of the threaded engines under
# ThreadSanitizer) and the vitest suite, then print one closing line
# "N passed, N failed" counting every test of every part.
set -u
cd "$(dirname "$0")/.."
passed=0
failed=0
tmp=$(mktemp -d)
report="$tmp/vitest.json"
trap 'rm -rf "$tmp"' EXIT

echo "== build"
if ! npm run --silent build; then
  echo "build failed"
  echo "0 passed, 1 failed"
  exit 1
fi

echo "== native tests (plain, AddressSanitizer+UBSan, and the threaded engines under ThreadSanitizer)"
for variant in "test" "SANITIZE=1 test" "SANITIZE=thread tsan-test"; do
  if out=$(make -s -C native $variant 2>&1); then :; fi
  echo "$out"
  p=$(grep -c '^ok ' <<<"$out")
  f=$(grep -c '^not ok ' <<<"$out")
  if ! grep -q '^native: done' <<<"$out"; then f=$((f + 1)); echo "not ok - native test run ($variant) did not finish"; fi
  passed=$((passed + p))
  failed=$((failed + f))
done

echo "== vitest"
npx vitest run --reporter=default --reporter=json --outputFile.json="$report"
vitest_rc=$?
if [ -s "$report" ]; then
  read -r p f < <(node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); console.log(r.numPassedTests, r.numFailedTests + (r.numRuntimeErrorTestSuites || 0) + (r.numFailedTestSuites && !r.numFailedTests ? r.numFailedTestSuites : 0))' "$report")
fi
if ! [[ "${p:-}" =~ ^[0-9]+$ && "${f:-}" =~ ^[0-9]+$ ]]; then
  echo "could not read the vitest report"
  p=0; f=1
fi
[ "$vitest_rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
passed=$((passed + p))
failed=$((failed + f))

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
