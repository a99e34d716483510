# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared by fuzz/run-short and fuzz/run-long: the packages, the clang build, the run.
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

FUZZ_TARGETS="fuzz-yaml fuzz-xml fuzz-sysfs"
FUZZ_PACKAGES="clang libclang-rt-14-dev"
fuzz_build="$top/build-fuzz"
# Where libFuzzer puts crash-*, leak-*, timeout-* and oom-* inputs.
fuzz_artifacts="$fuzz_build/artifacts"

# Each target's inputs are capped: the seeds are small, and long inputs only slow the search.
declare -A fuzz_max_len=([fuzz-yaml]=16384 [fuzz-xml]=16384 [fuzz-sysfs]=4096)

# The clang build: ASan and UBSan everywhere, libFuzzer's coverage in every library, no tests or man pages.
fuzz_setup() {
    ensure_packages $BUILD_PACKAGES $FUZZ_PACKAGES
    CC=clang build_dir build-fuzz -Dfuzz=true -Dtests=false -Dman=disabled \
        -Db_sanitize=address,undefined -Db_lundef=false -Dc_args=-fsanitize=fuzzer-no-link
    mkdir -p "$fuzz_artifacts"
    # The targets make their files in $TMPDIR and remove them, unless they crash: this goes in any case.
    # On tmpfs, as fuzz-sysfs writes a tree for every input: /dev/shm makes it several times faster.
    local base=${TMPDIR:-/tmp}
    if [ -d /dev/shm ] && [ -w /dev/shm ]; then base=/dev/shm; fi
    fuzz_tmp=$(mktemp -d "$base/virtform-fuzz-run.XXXXXX")
    trap 'rm -rf "$fuzz_tmp"' EXIT
    export TMPDIR="$fuzz_tmp"
    # Any UBSan report is a crash; leaks are checked after every input that allocated more than it freed.
    export UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:symbolize=1
}

# fuzz_run TARGET [LIBFUZZER OPTIONS...]: the options every run shares, with the dictionary.
fuzz_run() {
    local target=$1; shift
    "$fuzz_build/fuzz/$target" -rss_limit_mb=2048 -timeout=10 -max_len="${fuzz_max_len[$target]}" \
        -dict="$top/fuzz/$target.dict" -artifact_prefix="$fuzz_artifacts/$target-" "$@"
}

# Runs every input of the target's corpus once, crashers included: 0 when none fails.
fuzz_replay() {
    local target=$1
    local inputs=("$top/tests/fuzz-corpus/$target"/*)
    fuzz_run "$target" "${inputs[@]}" >"$fuzz_tmp/$target-replay.log" 2>&1 ||
        { tail -n 60 "$fuzz_tmp/$target-replay.log" >&2; echo "virtform: $target fails on its corpus" >&2; return 1; }
}
