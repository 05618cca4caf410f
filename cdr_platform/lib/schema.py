"""The CDR wire schema (version 1): one JSON object per Kafka message, keyed by served MSISDN.

One definition for the generator, mediation, the warehouse and the tests.

Fields (JSON types):
    schema_version     int      always 1 for this version
    record_id          string   unique id of the record (UUID); the de-duplication key
    record_type        string   voice | sms | data
    served_msisdn      string   E.164 number of the subscriber the record is billed to
    other_msisdn       string   the other party (voice, sms); E.164, national (0...) or
                                international (00...) format as switches emit it; null for data
    direction          string   outgoing | incoming (voice, sms); null for data
    start_time         string   ISO-8601 UTC with milliseconds, "2026-11-25T10:15:00.123Z"
    duration_s         int      seconds, > 0 (voice, data); null for sms
    data_volume_bytes  int      bytes up + down (data); null otherwise
    cell_id            string   serving cell, CGI "MCC-MNC-LAC-CI"
    technology         string   2G | 3G | 4G | 5G, or a vendor alias (GSM, UMTS, LTE, NR)
    roaming            bool     true when the cell belongs to a foreign network
    visited_network    string   MCC-MNC of the visited network when roaming, else null

Kafka headers: `cdr-schema` = "cdr.v1"; `injected-error` = the error class, only on records
the generator spoiled on purpose (for tests; mediation must never read it).
"""

from __future__ import annotations

SCHEMA_VERSION = 1
SCHEMA_HEADER = "cdr-schema"
SCHEMA_HEADER_VALUE = b"cdr.v1"
INJECTED_ERROR_HEADER = "injected-error"

RECORD_TYPES = ("voice", "sms", "data")
DIRECTIONS = ("outgoing", "incoming")
TECHNOLOGIES = ("2G", "3G", "4G", "5G")
# Names that switches of different vendors and generations emit for the same technology.
TECHNOLOGY_ALIASES = {"GSM": "2G", "GPRS": "2G", "EDGE": "2G", "UMTS": "3G", "HSPA": "3G",
                      "WCDMA": "3G", "LTE": "4G", "EUTRAN": "4G", "NR": "5G", "5GNR": "5G"}

FIELDS = ("schema_version", "record_id", "record_type", "served_msisdn", "other_msisdn",
          "direction", "start_time", "duration_s", "data_volume_bytes", "cell_id",
          "technology", "roaming", "visited_network")

# Fields that must be present and non-null for every record type...
COMMON_MANDATORY_FIELDS = ("schema_version", "record_id", "record_type", "served_msisdn",
                           "start_time", "cell_id", "technology")
# ...and per record type.
MANDATORY_FIELDS_BY_TYPE = {
    "voice": COMMON_MANDATORY_FIELDS + ("other_msisdn", "direction", "duration_s"),
    "sms": COMMON_MANDATORY_FIELDS + ("other_msisdn", "direction"),
    "data": COMMON_MANDATORY_FIELDS + ("duration_s", "data_volume_bytes"),
}

# JSON type of each field when present and not null.
FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "schema_version": int,
    "record_id": str,
    "record_type": str,
    "served_msisdn": str,
    "other_msisdn": str,
    "direction": str,
    "start_time": str,
    "duration_s": int,
    "data_volume_bytes": int,
    "cell_id": str,
    "technology": str,
    "roaming": bool,
    "visited_network": str,
}
