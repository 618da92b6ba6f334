#!/usr/bin/env bash
# `make check`: build twice (the default build with gcc -Werror, and a clang
# build with ASan + UBSan and the fuzz targets), then run the unit tests, the
# end-to-end tests against the sanitized binaries, a short run of every fuzz
# target and the format check. Ends with one line: "N passed, N failed".
#
#   FUZZ_SECONDS   seconds per fuzz target (default 10)
#   PYTEST_ARGS    extra arguments for pytest (e.g. "-k smtp")
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

passed=0
failed=0
failures=()
pass() { passed=$((passed + $1)); }
fail() { failed=$((failed + $1)); failures+=("$2"); }

step() { printf '\n=== %s\n' "$*"; }

step "build (gcc, -Wall -Wextra -Werror)"
if [ ! -f build/build.ninja ]; then
	meson setup build >/dev/null || { echo "meson setup build failed"; exit 1; }
fi
ninja -C build || { echo "0 passed, 1 failed"; exit 1; }

step "build (clang, ASan + UBSan, fuzz targets)"
if [ ! -f build-check/build.ninja ]; then
	CC=clang meson setup build-check \
		-Db_sanitize=address,undefined \
		-Dc_args='-fno-sanitize-recover=all -fno-omit-frame-pointer -fsanitize=fuzzer-no-link' \
		-Dfuzz=true >/dev/null || { echo "meson setup build-check failed"; exit 1; }
fi
ninja -C build-check || { echo "0 passed, 1 failed"; exit 1; }

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

step "unit tests (cmocka, sanitized)"
meson test -C build-check --suite unit --print-errorlogs --num-processes 2
python3 - build-check/meson-logs/testlog.json > build-check/unit-counts <<'PY'
import json, sys
ok = bad = 0
names = []
for line in open(sys.argv[1]):
    t = json.loads(line)
    if t["result"] in ("OK", "EXPECTEDFAIL", "SKIP"):
        ok += 1
    else:
        bad += 1
        names.append(t["name"])
print(ok, bad, " ".join(names))
PY
read -r u_ok u_bad u_names < build-check/unit-counts
pass "$u_ok"
[ "$u_bad" -eq 0 ] || fail "$u_bad" "unit: $u_names"

step "end-to-end tests (pytest, real clients, sanitized daemon)"
export POSTGATE_BUILD_DIR="$root/build-check"
# The gcc build without sanitizers, for the valgrind test (tests/e2e/test_valgrind.py).
export POSTGATE_PLAIN_BUILD_DIR="$root/build"
junit="$root/build-check/e2e-junit.xml"
rm -f "$junit"
# shellcheck disable=SC2086
/usr/bin/python3 -m pytest -p no:cacheprovider -q -rfE --junitxml="$junit" tests/e2e ${PYTEST_ARGS:-}
if [ -f "$junit" ]; then
	read -r e_ok e_bad < <(/usr/bin/python3 - "$junit" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root)
tests = sum(int(s.get("tests", 0)) for s in suites)
bad = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
skipped = sum(int(s.get("skipped", 0)) for s in suites)
print(tests - bad - skipped, bad)
PY
)
	pass "$e_ok"
	[ "$e_bad" -eq 0 ] || fail "$e_bad" "end-to-end tests"
	[ "$e_ok" -gt 0 ] || fail 1 "end-to-end: no test ran"
else
	fail 1 "end-to-end: pytest did not run"
fi

step "fuzz targets (${FUZZ_SECONDS:-10}s each)"
mkdir -p build-check/fuzz-artifacts
for src in fuzz/*_fuzz.c; do
	name=$(basename "$src" .c)
	work=$(mktemp -d)
	dict=()
	[ -f "fuzz/$name.dict" ] && dict=(-dict="fuzz/$name.dict")
	if "build-check/fuzz/$name" -max_total_time="${FUZZ_SECONDS:-10}" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=0 -artifact_prefix="build-check/fuzz-artifacts/$name-" \
		"${dict[@]}" "$work" "fuzz/corpus/$name" >"build-check/$name.log" 2>&1; then
		echo "$name: ok ($(grep -c . "build-check/$name.log") log lines)"
		pass 1
	else
		echo "$name: FAILED — see build-check/$name.log"
		tail -30 "build-check/$name.log"
		fail 1 "fuzz: $name"
	fi
	rm -rf "$work"
done

step "format (clang-format --dry-run)"
unformatted=$(for f in $(git ls-files '*.c' '*.h'; git ls-files --others --exclude-standard '*.c' '*.h'); do
	[ -f "$f" ] && { clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || echo "$f"; }
done)
if [ -z "$unformatted" ]; then
	pass 1
else
	echo "not clang-formatted: $unformatted"
	fail 1 "format: $unformatted"
fi

echo
for f in "${failures[@]}"; do echo "FAILED: $f"; done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
