"""Hostile and odd CDR messages, shared by the fuzz test on the stream and the bulk-rules tests."""

from __future__ import annotations

import os
import random

import orjson


def fuzz_messages(seed: int = 99) -> list[tuple[bytes | None, bytes | None]]:
    rng = random.Random(seed)
    good = {
        "schema_version": 1,
        "record_type": "voice",
        "served_msisdn": "+212661234567",
        "other_msisdn": "+212612345678",
        "direction": "outgoing",
        "start_time": "2026-11-01T10:00:00Z",
        "duration_s": 60,
        "data_volume_bytes": None,
        "cell_id": "604-01-01000-00010",
        "technology": "4G",
        "roaming": False,
        "visited_network": None,
    }
    injections = [
        "'); drop table clean_cdrs; --",
        "1 or 1=1",
        "\\x00",
        "${jndi:ldap://x}",
        "<script>",
        "😀📞",
        "\u202e\u0000",
        "Robert'); DROP TABLE Students;--",
    ]
    out: list[tuple[bytes | None, bytes | None]] = []
    for i in range(1500):
        kind = i % 10
        rec = dict(good, record_id=f"fuzz-{i}")
        if kind == 0:
            out.append((None, os.urandom(rng.randint(1, 400))))
        elif kind == 1:
            out.append((b"k", orjson.dumps(rec)[: rng.randint(0, 120)]))
        elif kind == 2:
            out.append((None, b"" if rng.random() < 0.5 else None))
        elif kind == 3:
            rec[rng.choice(list(good))] = "X" * rng.choice([100, 10_000, 500_000])
            out.append((b"big", orjson.dumps(rec)))
        elif kind == 4:
            rec[rng.choice(list(good))] = rng.choice([[], {}, 3.5, True, -1, "1", None])
            out.append((b"types", orjson.dumps(rec)))
        elif kind == 5:
            rec[rng.choice(["cell_id", "other_msisdn", "record_id", "technology", "direction"])] = rng.choice(
                injections
            )
            out.append((rng.choice(injections).encode(), orjson.dumps(rec)))
        elif kind == 6:
            out.append(
                (
                    None,
                    rng.choice(
                        [
                            b"[]",
                            b"null",
                            b"42",
                            b'"text"',
                            b"{}",
                            b'{"a":1e999}',
                            b"NaN",
                            b'{"record_id": "dup", "record_id": "twice"}',
                        ]
                    ),
                )
            )
        elif kind == 7:
            out.append((None, orjson.dumps(rec).replace(b"+212661234567", "+212٦٦١٢٣٤٥٦٧".encode())))
        else:  # valid records; their ids are safe, the point is they are stored as data
            out.append((b"+212661234567", orjson.dumps(rec)))
    return out
