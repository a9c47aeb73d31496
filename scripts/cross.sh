#!/usr/bin/env bash
# Static router builds without Docker, and the test suite under qemu-user.
#
#   scripts/cross.sh TARGET [STEP...]
#
# TARGET: mipsel | mips | armv7 | aarch64 | x86_64 (or the full Rust triple).
# STEP:   build   static, stripped release router binary at
#                 ${CARGO_TARGET_DIR:-target}/TRIPLE/release/postern (default):
#                 `--no-default-features`, what a router runs (no client,
#                 demo or import)
#         build-desktop  the same with the default features (feature
#                 `desktop`: everything) at .../release/postern-desktop
#                 (built in TARGET_DIR/desktop)
#         breakdown  the router build unstripped (in TARGET_DIR/size-symbols)
#                 and where its bytes are (tools/size-breakdown.py)
#         test    unit + integration tests under qemu-<arch>-static
#         size    print the release binary's size (bytes) and `file` line
#         version run `postern --version` under qemu
#
# Installs what it needs first (idempotent; apt needs root): qemu-user-static,
# file, binutils-multiarch (objcopy for MIPS), the pinned nightly toolchain with
# rust-src (std is rebuilt with -Zbuild-std: mips is tier 3, and a
# size-optimised std saves a third), and zig from PyPI in a venv as the linker
# for the 32-bit targets (it carries musl for every arch; no cross gcc).
#
# Environment: POSTERN_NIGHTLY (toolchain, default below), POSTERN_PANIC
# (`immediate-abort`, the router build's default: a panic stops at once,
# without its message and the formatting and unwinder that would print it,
# -140 KB on mipsel; src/crash.rs still logs one line with the signal and
# address, which `addr2line -e` on the unstripped binary in deps/ resolves.
# `abort`, the desktop build's default, keeps panic messages),
# POSTERN_ZIG_VENV (where zig goes; tools/zcc reads the same variable).
#
# MIPS builds use -Crelocation-model=static: the binary is a static, non-PIE
# executable anyway, and MIPS PIC code calls and addresses everything through
# the GOT (lw t9 + jalr per call): -11% (80 KB) of the mipsel router binary.
set -euo pipefail
cd "$(dirname "$0")/.."

# The pinned nightly (scripts/rust-nightly; the fuzz build uses the same).
NIGHTLY=${POSTERN_NIGHTLY:-$(cat scripts/rust-nightly)}
ZIG_VERSION=0.15.2
ZIG_VENV=${POSTERN_ZIG_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/postern/zig-venv}
PANIC_SET=${POSTERN_PANIC:-}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
export RUST_BACKTRACE=0 # a panicking test under QEMU symbolizes for seconds

die() { echo "cross.sh: $*" >&2; exit 1; }

[ $# -ge 1 ] || die "usage: scripts/cross.sh TARGET [build|build-desktop|breakdown|test|size|version]..."
case "$1" in
    mipsel | mipsel-unknown-linux-musl) T=mipsel-unknown-linux-musl QEMU=qemu-mipsel-static ;;
    mips | mips-unknown-linux-musl) T=mips-unknown-linux-musl QEMU=qemu-mips-static ;;
    armv7 | armv7-unknown-linux-musleabihf) T=armv7-unknown-linux-musleabihf QEMU=qemu-arm-static ;;
    aarch64 | aarch64-unknown-linux-musl) T=aarch64-unknown-linux-musl QEMU=qemu-aarch64-static ;;
    x86_64 | x86_64-unknown-linux-musl) T=x86_64-unknown-linux-musl QEMU= ;;
    *) die "unknown target '$1' (mipsel, mips, armv7, aarch64, x86_64)" ;;
esac
shift
STEPS=("$@")
[ ${#STEPS[@]} -gt 0 ] || STEPS=(build)

# Every target links with zig (tools/zcc-*: its musl, crt objects included).
# Release builds rebuild std (nightly -Zbuild-std, optimised for size). Tests
# on the 32-bit targets do too (mips has no prebuilt std; the nightly's libc
# must see the 64-bit time_t switch); aarch64/x86_64 tests use stable's
# prebuilt std, which is quicker (the pinned nightly ships no musl std).
ZIG=1
case "$T" in
    mips* | armv7*) PREBUILT_STD= ;;
    *) PREBUILT_STD=1 ;;
esac

install() {
    local want=()
    command -v file >/dev/null || want+=(file)
    # (no `| grep -q` under pipefail: an early exit SIGPIPEs the writer)
    case "$(objcopy --info 2>/dev/null)" in *elf32-tradbigmips*) ;; *) want+=(binutils-multiarch) ;; esac
    [ -z "$QEMU" ] || command -v "$QEMU" >/dev/null || want+=(qemu-user-static)
    if [ -n "$ZIG" ] && ! python3 -c 'import venv, ensurepip' 2>/dev/null; then want+=(python3-venv); fi
    if [ ${#want[@]} -gt 0 ]; then
        command -v apt-get >/dev/null && [ "$(id -u)" = 0 ] ||
            die "missing ${want[*]}: install them (Debian: apt-get install ${want[*]})"
        echo "== apt-get install ${want[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null ||
            { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null; }
    fi
    if ! rustup component list --toolchain "$NIGHTLY" --installed 2>/dev/null | grep -c '^rust-src' >/dev/null; then
        echo "== rustup toolchain install $NIGHTLY (rust-src for build-std)"
        rustup toolchain install "$NIGHTLY" --profile minimal -c rust-src >/dev/null
    fi
    if [ -n "$PREBUILT_STD" ] && ! rustup target list --toolchain stable --installed | grep -cx "$T" >/dev/null; then
        echo "== rustup target add --toolchain stable $T (prebuilt std for tests)"
        rustup target add --toolchain stable "$T" >/dev/null
    fi
    if [ -n "$ZIG" ] && ! "$ZIG_VENV/bin/python3" -m ziglang version 2>/dev/null | grep -cx "$ZIG_VERSION" >/dev/null; then
        echo "== pip install ziglang==$ZIG_VERSION into $ZIG_VENV"
        python3 -m venv "$ZIG_VENV"
        "$ZIG_VENV/bin/pip" install -q --disable-pip-version-check "ziglang==$ZIG_VERSION"
    fi
    export POSTERN_ZIG_VENV=$ZIG_VENV
}

BIN=$TARGET_DIR/$T/release/postern

# build [desktop|symbols]: the router build, or with `desktop` the default
# features; `symbols`: the router build with its symbols, for breakdown.
build() {
    local extra=() features=(--no-default-features) out=$BIN kind=router PANIC=${PANIC_SET:-immediate-abort}
    local target_dir=$TARGET_DIR
    if [ "${1:-}" = desktop ]; then
        # Its own target dir: the router binary at $BIN stays, and the
        # two std builds (other panic strategies) are both kept.
        target_dir=$TARGET_DIR/desktop
        features=() out=$BIN-desktop kind=desktop PANIC=${PANIC_SET:-abort}
    elif [ "${1:-}" = symbols ]; then
        target_dir=$TARGET_DIR/size-symbols out=$TARGET_DIR/size-symbols/$T/release/postern kind="router, unstripped"
        extra+=(--config profile.release.strip=false)
    fi
    local rustflags='"-Cforce-unwind-tables=no"'
    case "$T" in mips*) rustflags+=', "-Crelocation-model=static"' ;; esac
    if [ "$PANIC" = immediate-abort ]; then
        extra+=(-Zpanic-immediate-abort --config 'profile.release.panic="immediate-abort"')
    fi
    echo "== build $T $kind (release, std: optimize_for_size, panic=$PANIC)"
    local t0=$SECONDS
    # Unwind tables are dead weight with panic=abort (optimize_for_size also
    # drops std's backtrace printer). The [target] rustflags of
    # .cargo/config.toml still apply: --config arrays are appended.
    cargo +"$NIGHTLY" build --release --locked --target "$T" --target-dir "$target_dir" ${features[@]+"${features[@]}"} \
        -Zbuild-std=std,panic_abort -Zbuild-std-features=optimize_for_size \
        --config "target.$T.rustflags=[$rustflags]" ${extra[@]+"${extra[@]}"}
    # Strip what the linker keeps: MIPS `.pdr` (procedure descriptors, ~80 KB,
    # used by no one at run time) and the toolchain `.comment`. A new file, so
    # cargo's hard link in deps/ keeps the unstripped original.
    if [ "${1:-}" = symbols ]; then
        echo "== built $out (with symbols) in $((SECONDS - t0)) s"
        return
    fi
    objcopy --strip-all -R .pdr -R .comment "$target_dir/$T/release/postern" "$out.tmp"
    mv "$out.tmp" "$out"
    echo "== built $out in $((SECONDS - t0)) s"
    file -b "$out" | grep -c 'statically linked' >/dev/null || die "$out is not statically linked: $(file -b "$out")"
}

# Tests at opt-level 1 without debug info: the randomized no-panic tests take
# minutes unoptimized under QEMU and seconds this way; debug assertions and
# overflow checks stay on.
run_tests() {
    local cargo_test=(+"$NIGHTLY" test -Zbuild-std)
    [ -z "$PREBUILT_STD" ] || cargo_test=(+stable test)
    echo "== test $T under ${QEMU:-the host (native)}"
    local t0=$SECONDS log
    log=$(mktemp)
    set +e
    # Root-only end-to-end suites drive the real kernel firewall (netns,
    # nf_tables, ipset over NETLINK_NETFILTER, which qemu-user refuses) or
    # check host-built packages; under qemu they are not run. They are named
    # here, loudly; the qemu-aware suites (netns, nft_backend) skip per test.
    local host_only=(netns_spa netns_fwknop netns_knock_modes netns_bans netns_lifecycle netns_actions netns_forward netns_floods netns_privileges fw3_backend openwrt
        netns_ban_scope netns_never_ban netns_totp_oracle netns_replay_gaps netns_uid netns_link_loss netns_fw4_guard netns_procd_restart netns_spa_flood2 netns_spa_theft
        netns_control netns_ha apk_package openwrt_feed openwrt_init luci luci_browser netns_fw3_guard
        netns_hooks netns_default_access netns_ssh_proxy netns_bare_machine package_without_git)
    local tests=() f name
    for f in tests/*.rs; do
        name=$(basename "$f" .rs)
        if [[ " ${host_only[*]} " == *" $name "* ]]; then
            echo "*** SKIPPED tests/$name.rs under qemu-user: root-only kernel firewall / host packaging suite (runs natively in CI) ***" | tee -a "$log"
        else
            tests+=(--test "$name")
        fi
    done
    # The tests that fork (src/spawn.rs, the command runner) run in a second,
    # single-threaded pass under qemu-user: a fork while other guest threads
    # run can leave the child deadlocked inside qemu before its exec (seen on
    # qemu-aarch64 7.2: the child waits on a futex forever, the test hangs).
    # Natively, and on a router (the daemon is single-threaded), fork is fine.
    local forking=(spawn:: runner:: crash:: the_command_runner_wakes_without_allocating)
    local skip=()
    if [ -n "$QEMU" ]; then
        for f in "${forking[@]}"; do skip+=(--skip "$f"); done
    fi
    local config=(--config profile.dev.opt-level=1 --config profile.dev.debug=false)
    cargo "${cargo_test[@]}" --locked --target "$T" --lib --bins "${tests[@]}" \
        "${config[@]}" -- "${skip[@]}" 2>&1 | tee -a "$log"
    local rc=${PIPESTATUS[0]}
    if [ -n "$QEMU" ] && [ "$rc" -eq 0 ]; then
        echo "== $T: the forking tests, one at a time"
        cargo "${cargo_test[@]}" --locked --target "$T" --lib --test alloc \
            "${config[@]}" -- --test-threads=1 "${forking[@]}" 2>&1 | tee -a "$log"
        rc=${PIPESTATUS[0]}
    fi
    set -e
    local passed failed skipped
    passed=$(grep -Eo '^test result: [A-Za-z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
    failed=$(grep -Eo '[0-9]+ failed;' "$log" | awk '{s+=$1} END {print s+0}')
    # A skipped test counts as passed in libtest's totals; its SKIPPED line
    # (straight to stderr, so it may share a line with other output) does not.
    skipped=$(grep -o 'SKIPPED' "$log" | wc -l)
    rm -f "$log"
    echo "== $T: $((passed - skipped)) ran and passed, $failed failed, $skipped skipped under qemu-user (listed above), in $((SECONDS - t0)) s"
    return "$rc"
}

install
for step in "${STEPS[@]}"; do
    case "$step" in
        build) build ;;
        build-desktop) build desktop ;;
        breakdown)
            build symbols
            python3 tools/size-breakdown.py "$TARGET_DIR/size-symbols/$T/release/postern" 2 30
            ;;
        test) run_tests ;;
        size)
            [ -f "$BIN" ] || build
            echo "$T: $(stat -c %s "$BIN") bytes; $(file -b "$BIN")"
            ;;
        version)
            [ -f "$BIN" ] || build
            if [ -n "$QEMU" ]; then "$QEMU" "$BIN" --version; else "$BIN" --version; fi
            ;;
        *) die "unknown step '$step' (build, build-desktop, breakdown, test, size, version)" ;;
    esac
done
