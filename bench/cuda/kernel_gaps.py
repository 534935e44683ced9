#!/usr/bin/env python3
"""Where a GPU idles between kernels, step by step, from a trace that kernel_trace writes.

    LD_PRELOAD=build/bench/cuda/libkernel_trace.so MX_KERNEL_TRACE=trace.txt \\
        build/tools/mx/mx bench train --device cuda --model gpt2-124m --recipe bf16
    python3 bench/cuda/kernel_gaps.py trace.txt

A step ends with the last of a run of kernels whose name matches --step-end (by default the
gradient norm's sum of squares, which a training step runs once, before its update). For each
step: its span on the GPU, the time no record was running, and that idle time split into short
gaps (back-to-back launches), middle ones, and long ones (the device waiting for the host).
"""
import argparse
import re
import sys


def fail(message):
    print(f"kernel_gaps: {message}", file=sys.stderr)
    sys.exit(2)


def read_trace(path):
    records = []
    try:
        f = open(path)
    except OSError as e:
        fail(f"{path}: {e.strerror}")
    with f:
        for number, line in enumerate(f, 1):
            parts = line.rstrip("\n").split(" ", 2)
            if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
                fail(f"{path}:{number}: expected 'start end name'")
            records.append((int(parts[0]), int(parts[1]), parts[2]))
    records.sort()
    return records


def step_ends(records, pattern):
    marks = [i for i, r in enumerate(records) if pattern.search(r[2])]
    return [m for j, m in enumerate(marks) if j + 1 == len(marks) or marks[j + 1] != m + 1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("trace")
    parser.add_argument("--step-end", default="sum_squares", metavar="REGEX")
    parser.add_argument("--short-us", type=float, default=5.0, help="short gaps are below this")
    parser.add_argument("--long-us", type=float, default=50.0, help="long gaps are at least this")
    args = parser.parse_args()
    records = read_trace(args.trace)
    ends = step_ends(records, re.compile(args.step_end))
    if len(ends) < 2:
        fail(f"fewer than two step ends match /{args.step_end}/ in {args.trace}")
    short_ns, long_ns = args.short_us * 1e3, args.long_us * 1e3
    print(f"{len(records)} records, {len(ends) - 1} whole steps")
    print(f"{'step':>4} {'span ms':>9} {'idle ms':>8} {'gaps':>5} {'short':>7} {'middle':>7} "
          f"{'long':>7} {'largest us':>10}")
    for n, (a, b) in enumerate(zip(ends, ends[1:]), 1):
        begin, busy_until = records[a][1], records[a][1]
        gaps = []
        for start, end, _ in records[a + 1:b + 1]:
            if start > busy_until:
                gaps.append(start - busy_until)
            busy_until = max(busy_until, end)
        span = busy_until - begin
        short = sum(g for g in gaps if g < short_ns)
        long = sum(g for g in gaps if g >= long_ns)
        middle = sum(gaps) - short - long
        print(f"{n:>4} {span / 1e6:>9.3f} {sum(gaps) / 1e6:>8.3f} {len(gaps):>5} "
              f"{short / 1e6:>7.3f} {middle / 1e6:>7.3f} {long / 1e6:>7.3f} "
              f"{max(gaps, default=0) / 1e3:>10.1f}")


if __name__ == "__main__":
    main()
