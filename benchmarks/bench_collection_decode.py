"""Benchmark: decode TS 32.297 files of TS 32.298 records into cdr.v1, against pycrate's bare decode.

    python -m benchmarks.bench_collection_decode [--count 50000] [--per-file 1000] [--runs 3] [--profile]

Builds `count` records (MO and MT calls, MO and MT SMS, PGW sessions of three partial records)
with the tests' encoder (cdr_platform_tests/threegpp_files.py, pycrate BER), `per-file` to a file.
Then, in this one process (one core), `runs` times each:
- bare: pycrate's BER decode of the same records (CSRecord / GPRSRecord `from_ber` + `get_val`),
  nothing else: the floor, what any decoder built on pycrate spends before its first mapping;
- ours: `threegpp.decode_file` end to end: file header, CDR headers, BER decode, mapping to cdr.v1.
Reported: the median run's records/s by wall clock and by the process's CPU time (the machine is
shared: CPU time is what one core does), and ours as a share of bare (the target is >= 70%).
`--profile` adds a cProfile of one `ours` run, the functions that take the most time.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import statistics
import time
from datetime import timedelta

from cdr_platform.lib.collection.formats import threegpp
from cdr_platform.lib.collection.formats.base import SourceProfile
from cdr_platform.lib.reference.network import cells_of
from cdr_platform_tests import threegpp_files as tf

PROFILE = SourceProfile(name="bench-node", format=threegpp.FORMAT)
TARGET_SHARE = 0.70


def _records(count: int, seed: int = 297) -> list:
    rng = random.Random(seed)
    cells = [tf.Cell.of(c.cell_id) for c in cells_of("IAM")]
    records: list = []
    while len(records) < count:
        start = tf.T0 + timedelta(seconds=rng.randrange(86_400))
        served = f"+2126{rng.randrange(10**8):08d}"
        other = f"+2126{rng.randrange(10**8):08d}"
        cell = rng.choice(cells)
        kind = rng.random()
        reference = len(records) + 1
        if kind < 0.35:
            records.append(tf.MoCall(served, other, start, rng.randint(1, 900), cell=cell, call_reference=reference))
        elif kind < 0.55:
            records.append(tf.MtCall(served, other, start, rng.randint(1, 900), cell=cell, call_reference=reference))
        elif kind < 0.65:
            records.append(tf.MoSms(served, other, start, cell=cell, message_reference=reference % 256))
        elif kind < 0.75:
            records.append(tf.MtSms(served, start, cell=cell))
        else:
            volumes = ((rng.randrange(10**6), rng.randrange(10**7)), (rng.randrange(10**5), rng.randrange(10**6)))
            records += tf.pgw_session(served, start, 3, cell=cell, charging_id=reference, volumes=volumes)
    return records[:count]


def _timed(run) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--per-file", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    began = time.perf_counter()
    encoded = [tf.encode_record(r) for r in _records(args.count)]
    files = [
        tf.file_of_encoded(encoded[i : i + args.per_file], sequence_number=n + 1)
        for n, i in enumerate(range(0, len(encoded), args.per_file))
    ]
    megabytes = sum(len(f) for f in files) / 1e6
    built_s = time.perf_counter() - began
    print(f"{len(encoded):,} records in {len(files)} files ({megabytes:.1f} MB), built in {built_s:.1f} s")

    choices = threegpp.CHOICES.by_ts()

    def bare() -> None:
        for ts_number, raw in encoded:
            choice = choices[ts_number]
            choice.from_ber(raw)
            choice.get_val()

    def ours() -> None:
        for data in files:
            decoded = threegpp.decode_file(data, PROFILE)
            if any(r.cdr is None for r in decoded.records):
                raise SystemExit("a benchmark record did not decode to a cdr.v1 message")

    results = {}
    for name, run in (("bare pycrate BER decode", bare), ("ours: decode_file to cdr.v1", ours)):
        timings = [_timed(run) for _ in range(args.runs)]
        results[name] = (statistics.median(t[0] for t in timings), statistics.median(t[1] for t in timings))

    print(f"\nmedian of {args.runs} runs, {len(encoded):,} records, one process (one core)")
    print(f"{'path':<30} {'wall s':>8} {'records/s':>11} {'cpu s':>8} {'records/s cpu':>14}")
    for name, (wall, cpu) in results.items():
        print(f"{name:<30} {wall:>8.2f} {len(encoded) / wall:>11,.0f} {cpu:>8.2f} {len(encoded) / cpu:>14,.0f}")
    (bare_wall, bare_cpu), (ours_wall, ours_cpu) = results.values()
    share = bare_cpu / ours_cpu
    verdict = "meets" if share >= TARGET_SHARE else "misses"
    print(f"ours / bare: {bare_wall / ours_wall:.0%} by wall clock, {share:.0%} by CPU ({verdict} {TARGET_SHARE:.0%})")

    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(ours)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
