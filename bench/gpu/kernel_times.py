"""Sums Nsight Compute's kernel times by kernel: where a profiled stretch of GPU work spends its time.

    python3 bench/gpu/kernel_times.py ncu.csv      (ncu --csv --metrics gpu__time_duration.sum
                                                    --print-units base --print-kernel-base function)

Prints one line per kernel name, largest total first: total ms, share of the stretch, launches,
mean µs per launch. Used by bench/gpu/run.sh (PROFILE=...); a development aid, not part of sieve.
"""
import csv
import sys
from collections import defaultdict


def main(path: str) -> None:
    total_ns: dict[str, float] = defaultdict(float)
    launches: dict[str, int] = defaultdict(int)
    with open(path, newline="") as f:
        # ncu writes its own log lines ("==PROF== ...") before the CSV header
        rows = csv.DictReader(line for line in f if line.startswith('"'))
        for row in rows:
            if row.get("Metric Name") != "gpu__time_duration.sum":
                continue
            name = row["Kernel Name"]
            total_ns[name] += float(row["Metric Value"].replace(",", ""))
            launches[name] += 1
    whole = sum(total_ns.values())
    if whole == 0:
        sys.exit(f"kernel_times.py: no kernel times in {path}")
    print(f"{sum(launches.values())} launches, {whole / 1e6:.1f} ms of kernel time")
    print(f"{'ms':>9} {'share':>6} {'launches':>8} {'µs each':>9}  kernel")
    for name, ns in sorted(total_ns.items(), key=lambda kv: -kv[1]):
        print(f"{ns / 1e6:9.2f} {ns / whole:6.1%} {launches[name]:8d} {ns / launches[name] / 1e3:9.1f}  {name[:100]}")


if __name__ == "__main__":
    main(sys.argv[1])
