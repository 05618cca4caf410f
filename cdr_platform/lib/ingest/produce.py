"""Generate CDRs and produce them into raw-cdrs, with progress and a report of what was sent."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from cdr_platform.lib.ingest.generator import CdrGenerator, GeneratorConfig
from cdr_platform.lib.ingest.producers import CdrProducer
from cdr_platform.lib.kafka_io import end_offsets
from cdr_platform.lib.settings import KafkaSettings

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 5.0
RATE_STEP = 100  # a rate limit is enforced every this many records


@dataclass
class ProduceReport:
    topic: str
    records: int = 0
    by_record_type: Counter = field(default_factory=Counter)
    by_injected_error: Counter = field(default_factory=Counter)
    by_hour: Counter = field(default_factory=Counter)  # UTC hour of day of the call start
    offsets_before: dict[int, int] = field(default_factory=dict)
    offsets_after: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    @property
    def valid_records(self) -> int:
        return self.records - sum(self.by_injected_error.values())

    def hourly_chart(self, width: int = 40) -> str:
        """Records per hour of day as a text bar chart (markdown), the busy hours at a glance."""
        peak = max(self.by_hour.values(), default=0) or 1
        lines = ["| hour (UTC) | records | |", "|---|---|---|"]
        for hour in range(24):
            n = self.by_hour.get(hour, 0)
            lines.append(f"| {hour:02d}:00 | {n:,} | `{'█' * round(width * n / peak)}` |")
        return "\n".join(lines)

    def offsets_table(self) -> list[dict[str, int]]:
        return [
            {
                "partition": p,
                "from_offset": self.offsets_before.get(p, 0),
                "to_offset": self.offsets_after[p],
                "messages": self.offsets_after[p] - self.offsets_before.get(p, 0),
            }
            for p in sorted(self.offsets_after)
        ]


def produce_cdrs(
    config: GeneratorConfig,
    producer: CdrProducer,
    kafka: KafkaSettings,
    topic: str,
    rate_limit: float | None = None,
    progress: Callable[[str], None] = log.info,
    on_records: Callable[[int], None] | None = None,
) -> ProduceReport:
    """Generate `config.count` CDRs and send them; raise if any delivery failed.

    `rate_limit` caps records per second (None or 0: as fast as possible), for demos and
    for feeding the continuous mediation mode at a steady pace. `progress` gets a line every
    few seconds; `on_records`, the number of records sent after every chunk (progress bars).
    """
    report = ProduceReport(topic=topic, offsets_before=end_offsets(kafka, topic))
    generator = CdrGenerator(config)
    started = time.perf_counter()
    last_progress = started
    for chunk in generator.chunks():
        for i in range(len(chunk)):
            producer.send(topic, chunk.keys[i], chunk.values[i], chunk.headers(i))
            if rate_limit and i % RATE_STEP == 0:  # steady, not bursts of a chunk
                ahead = (report.records + i) / rate_limit - (time.perf_counter() - started)
                if ahead > 0:
                    time.sleep(ahead)
        report.records += len(chunk)
        report.by_record_type.update(chunk.record_types)
        report.by_injected_error.update(e for e in chunk.injected if e is not None)
        report.by_hour.update(chunk.hours)
        if on_records:
            on_records(report.records)
        now = time.perf_counter()
        if now - last_progress >= PROGRESS_EVERY_S:
            last_progress = now
            rate = report.records / (now - started)
            progress(
                f"produced {report.records:,}/{config.count:,} CDRs "
                f"({100 * report.records / max(config.count, 1):.0f}%) at {rate:,.0f}/s"
            )
    producer.flush()
    report.seconds = time.perf_counter() - started
    stats = producer.stats
    if stats.failed:
        raise RuntimeError(f"{stats.failed} of {stats.sent} CDRs were not delivered to {topic}: {stats.first_error}")
    report.offsets_after = end_offsets(kafka, topic)
    progress(
        f"produced {report.records:,} CDRs to {topic} in {report.seconds:.1f} s ({report.records_per_second:,.0f}/s)"
    )
    return report
