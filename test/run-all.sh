#!/usr/bin/env bash
# The test command (npm test): build, run the native C tests (plain and under
# AddressSanitizer+UBSan) and the vitest suite, then print one closing line
# "N passed, N failed" counting every test of every part.
set -u
cd "$(dirname "$0")/.."
passed=0
failed=0
report=$(mktemp)
trap 'rm -f "$report"' EXIT

echo "== build"
if ! npm run --silent build; then
  echo "build failed"
  echo "0 passed, 1 failed"
  exit 1
fi

echo "== native tests (plain and sanitized)"
for variant in "" "SANITIZE=1"; do
  if out=$(make -s -C native $variant test 2>&1); then :; fi
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
  read -r p f < <(node -e 'const r=require(process.argv[1]);console.log(r.numPassedTests, r.numFailedTests + (r.numRuntimeErrorTestSuites||0))' "$report")
else
  p=0; f=1
fi
[ "$vitest_rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
passed=$((passed + p))
failed=$((failed + f))

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
