#!/usr/bin/env bash
# The cost of Conform: `csvlake run` over 500 small files of one table, where a tenth of them
# widen one column (`code` holds a text value, the rest only integers), against the same run
# where none does. Two cases, each timed in alternating repetitions in one invocation:
#
#   one run:   the 500 files in one run; with the widening, the 450 others are converted
#              again with the table's schema.
#   later run: 450 files converted by an earlier run, then 50 new files; with the widening, the
#              450 earlier files are converted again.
#
#   bash bench/conform.sh [--reps N] [--work-dir DIR] [--no-build]
#
# Prints a markdown table of the median wall times and the extra time of the widening.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

reps=5
work="bench/data/conform"
build=1
while [ $# -gt 0 ]; do
    case "$1" in
        --reps) reps="$2"; shift 2 ;;
        --work-dir) work="$2"; shift 2 ;;
        --no-build) build=0; shift ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

target="${CARGO_TARGET_DIR:-target}"
if [ "$build" = 1 ]; then
    cargo build --release --locked -p csvlake-cli >&2
fi
bin="${CSVLAKE_BIN:-$target/release/csvlake}"

rm -rf "$work"
mkdir -p "$work"
# Deterministic files: 200 rows of id, amount, code, day. In a widening file, one row's code
# is text.
python3 - "$work" <<'EOF'
import os, random, sys
work = sys.argv[1]
def write(path, n, widen):
    rng = random.Random(n)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("id,amount,code,day\n")
        for i in range(200):
            code = f"AB-{i}" if widen and i == 100 else str(rng.randrange(1000, 9999))
            f.write(f"{n * 1000 + i},{rng.randrange(1, 10**6)},{code},2026-{rng.randrange(1, 13):02}-{rng.randrange(1, 29):02}\n")
for case in ("plain", "widening"):
    for n in range(500):
        widen = case == "widening" and n % 10 == 9
        write(f"{work}/one/{case}/sales/part-{n:05}.csv", n, widen)
        part = "earlier" if n % 10 != 9 else "new"
        write(f"{work}/later/{case}/{part}/sales/part-{n:05}.csv", n, widen)
EOF

# Runs csvlake and prints its wall time in seconds.
timed() {
    local start end
    start=$(date +%s.%N)
    "$bin" run --quiet "$@" >/dev/null
    end=$(date +%s.%N)
    echo "$end - $start" | bc -l
}

median() { sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f", m}'; }

declare -A times
for rep in $(seq 1 "$reps"); do
    for case in plain widening; do
        out="$work/out-one-$case"
        rm -rf "$out"
        times[one-$case]+="$(timed --input "$work/one/$case" --output "$out" --run-id "r$rep")"$'\n'
        # The later run: the earlier files first (not timed), then the new ones beside them.
        input="$work/in-later-$case"
        out="$work/out-later-$case"
        rm -rf "$input" "$out"
        cp -r "$work/later/$case/earlier" "$input"
        "$bin" run --quiet --input "$input" --output "$out" --run-id "first$rep" >/dev/null
        cp -r "$work/later/$case/new/sales/." "$input/sales/"
        times[later-$case]+="$(timed --input "$input" --output "$out" --run-id "second$rep")"$'\n'
        conformed=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tables"][0].get("conformed", 0))' \
            "$out/_runs/second$rep/report.json")
        echo "rep $rep $case: later run conformed $conformed" >&2
    done
done

echo "| case | without widening, median (s) | with a tenth widening, median (s) | extra (s) | ratio |"
echo "|---|---:|---:|---:|---:|"
for case in one later; do
    plain=$(printf '%s' "${times[$case-plain]}" | median)
    widening=$(printf '%s' "${times[$case-widening]}" | median)
    extra=$(echo "$widening - $plain" | bc -l)
    ratio=$(echo "$widening / $plain" | bc -l)
    printf '| %s run | %.2f | %.2f | %.2f | %.2f |\n' "$case" "$plain" "$widening" "$extra" "$ratio"
done
