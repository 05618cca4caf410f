"""The file formats a source can declare, each with its decoder, and detection from a file's bytes.

    3gpp-ber      TS 32.297 CDR files of TS 32.298 records in ASN.1 BER (MSC, SMS, PGW)  threegpp.py
    asterisk-csv  Asterisk cdr_csv's Master.csv                                           asterisk_csv.py
    kamailio-acc  Kamailio acc module CDRs (dialog based, cdr_enable)                     kamailio_acc.py
    cdr-json      the platform's own cdr.v1 messages, one JSON object per line            cdr_json.py

Every decoder module offers `decode_file(data, profile) -> DecodedFile` and `looks_like(data) -> bool`
(base.py is the contract). Detection asks them in DETECTION_ORDER - the binary 3GPP header first,
the loosest (CSV) last - and takes the first that recognises the file.
"""

from __future__ import annotations

import importlib
from types import ModuleType

FORMAT_MODULES = {
    "3gpp-ber": "threegpp",
    "asterisk-csv": "asterisk_csv",
    "kamailio-acc": "kamailio_acc",
    "cdr-json": "cdr_json",
}
FORMATS = tuple(FORMAT_MODULES)
DETECTION_ORDER = ("3gpp-ber", "cdr-json", "kamailio-acc", "asterisk-csv")
# Formats whose file names carry the file sequence number (the last number of the name). A 3GPP
# file's number is in its header; a PBX's or a SIP proxy's rotated files are named by process
# rank (Kamailio's acc_cdrs_<rank>.log) or rotation counter (Master.csv.1 is the newest), not by
# sequence: they are checked by their SHA-256 only.
NAME_SEQUENCE_FORMATS = ("3gpp-ber", "cdr-json")


def decoder(format_name: str) -> ModuleType:
    """The decoder module of a format (imported when first needed: pycrate loads in seconds)."""
    if format_name not in FORMAT_MODULES:
        raise ValueError(f"unknown CDR file format {format_name!r}; one of: {', '.join(FORMATS)}")
    return importlib.import_module(f"{__name__}.{FORMAT_MODULES[format_name]}")


def detect_format(data: bytes) -> str | None:
    """The format whose decoder recognises `data`, or None."""
    for name in DETECTION_ORDER:
        if decoder(name).looks_like(data):
            return name
    return None
