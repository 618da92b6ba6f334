#!/usr/bin/env bash
# `make fuzz`: build the clang fuzzer build (build-check/, the same as
# scripts/check.sh) and run every fuzz target of fuzz/ for FUZZ_SECONDS each,
# from its seed corpus (fuzz/corpus/<name>/) with its dictionary
# (fuzz/<name>.dict). New corpus entries go to a scratch directory
# (build-check/fuzz-work/<name>/), never into the repository unless
# --merge is given: then the new inputs that add coverage are merged into
# fuzz/corpus/<name>/ (libFuzzer -merge=1) for a commit.
#
# Prints one line per target, "ok" or "CRASH <artifact path>", and exits
# non-zero if any target crashed (or timed out, or ran out of memory).
#
#   FUZZ_SECONDS    seconds per target (default 300)
#   FUZZ_TARGETS    space-separated names to run (default: all of fuzz/*_fuzz.c)
#   FUZZ_BUILD_DIR  the fuzzer build (default build-check)
#
#   scripts/fuzz.sh [--merge]
set -uo pipefail
cd "$(dirname "$0")/.."

merge=0
for arg in "$@"; do
	case "$arg" in
	--merge) merge=1 ;;
	*) echo "usage: scripts/fuzz.sh [--merge]" >&2; exit 2 ;;
	esac
done

seconds=${FUZZ_SECONDS:-300}
dir=${FUZZ_BUILD_DIR:-build-check}

if [ ! -f "$dir/build.ninja" ]; then
	CC=clang meson setup "$dir" \
		-Db_sanitize=address,undefined \
		-Dc_args='-fno-sanitize-recover=all -fno-omit-frame-pointer -fsanitize=fuzzer-no-link' \
		-Dfuzz=true >/dev/null || { echo "meson setup $dir failed"; exit 1; }
fi
ninja -C "$dir" -j2 || { echo "build failed"; exit 1; }

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

if [ -n "${FUZZ_TARGETS:-}" ]; then
	names=$FUZZ_TARGETS
else
	names=$(for src in fuzz/*_fuzz.c; do basename "$src" .c; done)
fi

mkdir -p "$dir/fuzz-artifacts"
ok=0
crashed=()
for name in $names; do
	bin="$dir/fuzz/$name"
	if [ ! -x "$bin" ]; then
		echo "$name: CRASH (no binary $bin: is it listed in fuzz/meson.build?)"
		crashed+=("$name")
		continue
	fi
	work="$dir/fuzz-work/$name"
	log="$dir/fuzz-$name.log"
	mkdir -p "$work" "fuzz/corpus/$name"
	dict=()
	[ -f "fuzz/$name.dict" ] && dict=(-dict="fuzz/$name.dict")
	start=$(date +%s)
	# The scratch directory comes first: libFuzzer writes new inputs there.
	if "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$dir/fuzz-artifacts/$name-" \
		"${dict[@]}" "$work" "fuzz/corpus/$name" >"$log" 2>&1; then
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
		echo "$name: ok ($(($(date +%s) - start)) s, ${runs:-?} runs, $(find "$work" -type f | wc -l) inputs in $work)"
		ok=$((ok + 1))
		if [ "$merge" -eq 1 ]; then
			"$bin" -merge=1 "${dict[@]}" "fuzz/corpus/$name" "$work" >>"$log" 2>&1 ||
				echo "$name: merge failed, see $log"
		fi
	else
		artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
		echo "$name: CRASH ${artifact:-(no artifact)} — log: $log"
		grep -m1 -E 'ERROR: |runtime error|Assertion|deadly signal' "$log" | sed 's/^/    /'
		crashed+=("$name")
	fi
done

echo
echo "fuzz: ${ok} ok, ${#crashed[@]} crashed${crashed[*]:+: ${crashed[*]}}"
echo "reproduce a crash: $dir/fuzz/<name> <artifact>"
[ "${#crashed[@]}" -eq 0 ]
