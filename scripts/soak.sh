#!/usr/bin/env bash
# `make soak`: build the sanitized build (build-check/, as scripts/check.sh
# does) and run tests/soak/soak.py against its postgated: about a minute of
# honest users sending and fetching while hostile clients flood, guess
# passwords, go slow and send garbage (docs/testing.md).
#
#   SOAK_SECONDS  seconds of traffic (default 45); the whole run takes ~15 s more
set -uo pipefail
cd "$(dirname "$0")/.."
dir=${SOAK_BUILD_DIR:-build-check}

if [ ! -f "$dir/build.ninja" ]; then
	CC=clang meson setup "$dir" \
		-Db_sanitize=address,undefined \
		-Dc_args='-fno-sanitize-recover=all -fno-omit-frame-pointer -fsanitize=fuzzer-no-link' \
		-Dfuzz=true >/dev/null || { echo "meson setup $dir failed"; exit 1; }
fi
ninja -C "$dir" -j2 postgated postgate || { echo "build failed"; exit 1; }

export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
case "$dir" in /*) ;; *) dir="$(pwd)/$dir" ;; esac
POSTGATE_BUILD_DIR="$dir" exec /usr/bin/python3 tests/soak/soak.py
