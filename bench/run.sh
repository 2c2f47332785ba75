#!/usr/bin/env bash
# Benchmark driver for csvlake: builds the release binaries, generates the
# synthetic corpora with gen-corpus, times `csvlake run` on each corpus and,
# when polars is available, the same job with bench/polars_peer.py.
#
# Usage: bash bench/run.sh [--huge] [--with-polars] [--reps N]
#                          [--only large|small|longline|huge] [--work-dir DIR] [--no-build]
#
# The longline corpus is one gzip object whose first line is 1 GiB: csvlake must
# fail it as bad_input.limit_exceeded in bounded memory.
#
# Environment:
#   CARGO_TARGET_DIR  cargo target directory (default: <repo>/target)
#   CSVLAKE_BIN       csvlake binary to time (default: $CARGO_TARGET_DIR/release/csvlake)
#
# The results table (markdown) goes to stdout; progress goes to stderr.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_DIR/target}
WORK_DIR=$BENCH_DIR/data
VENV_DIR=$BENCH_DIR/.venv

HUGE=0
WITH_POLARS=0
REPS=3
ONLY=""
BUILD=1

usage() {
    sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

log() {
    printf '%s\n' "$*" >&2
}

die() {
    log "error: $*"
    exit 1
}

while (($#)); do
    case $1 in
        --huge) HUGE=1 ;;
        --with-polars) WITH_POLARS=1 ;;
        --reps)
            [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || die "--reps needs a positive integer"
            REPS=$2
            shift
            ;;
        --only)
            case ${2:-} in
                large | small | longline | huge) ONLY=$2 ;;
                *) die "--only takes large, small, longline or huge" ;;
            esac
            shift
            ;;
        --work-dir)
            [[ -n ${2:-} ]] || die "--work-dir needs a directory"
            WORK_DIR=$2
            shift
            ;;
        --no-build) BUILD=0 ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
    shift
done

[[ -x /usr/bin/time ]] || die "/usr/bin/time (GNU time) is required: apt-get install time"

# Corpora to run, in order.
CORPORA=()
if [[ -n $ONLY ]]; then
    CORPORA=("$ONLY")
else
    CORPORA=(large small longline)
    if ((HUGE)); then
        CORPORA+=(huge)
    fi
fi

# ---------------------------------------------------------------- build
if ((BUILD)); then
    log "==> cargo build --release -p csvlake-cli -p csvlake-bench (target: $TARGET_DIR)"
    (cd "$REPO_DIR" && CARGO_TARGET_DIR=$TARGET_DIR cargo build --release -p csvlake-cli -p csvlake-bench >&2)
fi
BIN=${CSVLAKE_BIN:-$TARGET_DIR/release/csvlake}
GEN=$TARGET_DIR/release/gen-corpus
[[ -x $BIN ]] || die "csvlake binary not found: $BIN"
[[ -x $GEN ]] || die "gen-corpus binary not found: $GEN"

mkdir -p "$WORK_DIR"
WORK_DIR=$(cd "$WORK_DIR" && pwd)
log "==> corpora and outputs under: $WORK_DIR"

# ---------------------------------------------------------------- corpora
# gen-corpus arguments for a corpus name.
corpus_args() {
    case $1 in
        large) echo "--rows 2000000" ;;
        small) echo "--rows 400 --files 500" ;;
        huge) echo "--bytes 1073741824" ;;
        longline) echo "longline 1073741824" ;;
    esac
}

# The longline corpus: a header, then a first data line of $1 bytes, gzip-compressed.
generate_longline() {
    local dir=$1 n=$2
    mkdir -p "$dir"
    { printf 'a,b\n'; head -c "$n" /dev/zero | tr '\0' 'x'; printf ',1\n2,3\n'; } | gzip -1 >"$dir/longline.csv.gz"
}

# Generates a corpus unless an identical one (same arguments, same generator
# binary) is already there; gen-corpus is deterministic, so reuse is safe.
generate() {
    local name=$1 dir=$WORK_DIR/corpus/$1 stamp args
    args=$(corpus_args "$name")
    stamp="$args $(stat -c '%s %Y' "$GEN")"
    if [[ -f $dir/.stamp && $(cat "$dir/.stamp") == "$stamp" ]]; then
        log "==> corpus $name: up to date"
        return
    fi
    rm -rf "$dir"
    log "==> corpus $name: gen-corpus $args"
    if [[ $name == longline ]]; then
        generate_longline "$dir" 1073741824
    else
        # shellcheck disable=SC2086 # args is a list of flags
        "$GEN" --out "$dir" $args
    fi
    printf '%s\n' "$stamp" >"$dir/.stamp"
}

for c in "${CORPORA[@]}"; do
    generate "$c"
done

# ---------------------------------------------------------------- polars
PY=""
if ((WITH_POLARS)); then
    if [[ -x $VENV_DIR/bin/python ]] && "$VENV_DIR/bin/python" -c 'import polars' 2>/dev/null; then
        PY=$VENV_DIR/bin/python
    elif python3 -c 'import polars' 2>/dev/null; then
        PY=python3
    else
        log "==> installing polars into $VENV_DIR"
        python3 -m venv "$VENV_DIR"
        "$VENV_DIR/bin/pip" install --quiet --upgrade pip >&2
        "$VENV_DIR/bin/pip" install --quiet polars >&2
        PY=$VENV_DIR/bin/python
    fi
elif python3 -c 'import polars' 2>/dev/null; then
    PY=python3
elif [[ -x $VENV_DIR/bin/python ]] && "$VENV_DIR/bin/python" -c 'import polars' 2>/dev/null; then
    PY=$VENV_DIR/bin/python
else
    log "==> polars not found: skipping the peer (pass --with-polars to install it in $VENV_DIR)"
fi
if [[ -n $PY ]]; then
    log "==> polars $("$PY" -c 'import polars; print(polars.__version__)') via $PY"
fi

# ---------------------------------------------------------------- timing
# Median of the numbers given as arguments.
median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# Maximum of the numbers given as arguments.
maximum() {
    printf '%s\n' "$@" | sort -g | tail -n 1
}

# Runs one tool REPS times on a corpus and appends a result line
# "corpus tool files input_bytes wall_median rss_max_kib" to RESULTS.
RESULTS=()
measure() {
    local tool=$1 corpus=$2 in_dir=$WORK_DIR/corpus/$2 files bytes rep out tfile logf
    local walls=() rsss=()
    files=$(find "$in_dir" -maxdepth 1 -name '*.csv*' | wc -l)
    bytes=$(find "$in_dir" -maxdepth 1 -name '*.csv*' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
    tfile=$WORK_DIR/time.txt
    logf=$WORK_DIR/$tool-$corpus.log
    for ((rep = 1; rep <= REPS; rep++)); do
        out=$WORK_DIR/out/$tool/$corpus
        rm -rf "$out"
        mkdir -p "$(dirname "$out")"
        local cmd=()
        case $tool in
            csvlake) cmd=("$BIN" run --input "$in_dir" --output "$out") ;;
            polars) cmd=("$PY" "$BENCH_DIR/polars_peer.py" "$in_dir" "$out") ;;
        esac
        if [[ $corpus == longline ]]; then
            # The run fails by design; the file must fail as limit_exceeded.
            /usr/bin/time -f '%e %M' -o "$tfile" "${cmd[@]}" >"$logf" 2>&1 || true
            if ! grep -q 'bad_input.limit_exceeded' "$logf"; then
                log "error: $tool did not fail $corpus as bad_input.limit_exceeded (rep $rep): ${cmd[*]}"
                tail -n 20 "$logf" >&2
                exit 1
            fi
        elif ! /usr/bin/time -f '%e %M' -o "$tfile" "${cmd[@]}" >"$logf" 2>&1; then
            log "error: $tool failed on $corpus (rep $rep): ${cmd[*]}"
            tail -n 20 "$logf" >&2
            exit 1
        fi
        local wall rss
        # GNU time puts "Command exited with non-zero status N" first when the run fails.
        read -r wall rss < <(tail -n 1 "$tfile")
        walls+=("$wall")
        rsss+=("$rss")
        log "    $tool $corpus rep $rep/$REPS: ${wall}s, $((rss / 1024)) MiB"
    done
    rm -rf "$WORK_DIR/out/$tool/$corpus"
    RESULTS+=("$corpus $tool $files $bytes $(median "${walls[@]}") $(maximum "${rsss[@]}")")
}

for c in "${CORPORA[@]}"; do
    log "==> $c: csvlake x$REPS"
    measure csvlake "$c"
    if [[ -n $PY && $c != longline ]]; then
        log "==> $c: polars x$REPS"
        measure polars "$c"
    fi
done
rm -f "$WORK_DIR/time.txt"

# ---------------------------------------------------------------- report
echo
echo "| Corpus | Tool | Files | Input (MB) | Wall, median of $REPS (s) | MB/s | Files/min | Peak RSS (MiB) |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
for r in "${RESULTS[@]}"; do
    # shellcheck disable=SC2086 # r is a space-separated record
    set -- $r
    awk -v c="$1" -v t="$2" -v f="$3" -v b="$4" -v w="$5" -v k="$6" 'BEGIN {
        mb = b / 1e6; ws = (w > 0) ? w : 0.001
        printf "| %s | %s | %d | %.1f | %.2f | %.1f | %.0f | %.1f |\n", c, t, f, mb, w, mb / ws, f / ws * 60, k / 1024
    }'
done

if [[ -n $PY ]]; then
    echo
    echo "| Corpus | Wall csvlake/polars | Peak RSS csvlake/polars |"
    echo "|---|---:|---:|"
    for c in "${CORPORA[@]}"; do
        [[ $c == longline ]] && continue
        cw="" ck="" pw="" pk=""
        for r in "${RESULTS[@]}"; do
            # shellcheck disable=SC2086 # r is a space-separated record
            set -- $r
            [[ $1 == "$c" ]] || continue
            case $2 in
                csvlake) cw=$5 ck=$6 ;;
                polars) pw=$5 pk=$6 ;;
            esac
        done
        awk -v c="$c" -v cw="$cw" -v ck="$ck" -v pw="$pw" -v pk="$pk" 'BEGIN {
            printf "| %s | %.2f | %.2f |\n", c, cw / (pw > 0 ? pw : 0.001), ck / pk
        }'
    done
fi
