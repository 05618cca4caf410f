"""The catalogue of rejection reasons: stable codes shared by mediation, tests and dashboards."""

from __future__ import annotations

from enum import Enum


class Reason(str, Enum):
    """Stable rejection reason codes, shared by mediation, tests and dashboards."""

    EMPTY_MESSAGE = "EMPTY_MESSAGE"
    # bigger than CDR_MEDIATION_MAX_PAYLOAD_BYTES: decided on the length alone, never parsed
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    INVALID_ENCODING = "INVALID_ENCODING"  # not UTF-8
    MALFORMED_JSON = "MALFORMED_JSON"  # not parseable, or not a JSON object
    UNSUPPORTED_SCHEMA_VERSION = "UNSUPPORTED_SCHEMA_VERSION"
    MISSING_FIELD = "MISSING_FIELD"
    WRONG_TYPE = "WRONG_TYPE"
    FIELD_TOO_LONG = "FIELD_TOO_LONG"
    UNKNOWN_RECORD_TYPE = "UNKNOWN_RECORD_TYPE"
    INVALID_MSISDN = "INVALID_MSISDN"  # the served party
    INVALID_OTHER_MSISDN = "INVALID_OTHER_MSISDN"
    INVALID_DIRECTION = "INVALID_DIRECTION"
    INVALID_TIMESTAMP = "INVALID_TIMESTAMP"
    FUTURE_TIMESTAMP = "FUTURE_TIMESTAMP"
    NON_POSITIVE_DURATION = "NON_POSITIVE_DURATION"
    NEGATIVE_VOLUME = "NEGATIVE_VOLUME"
    VALUE_OUT_OF_RANGE = "VALUE_OUT_OF_RANGE"  # a duration or volume beyond the plausible maximum
    STALE_TIMESTAMP = "STALE_TIMESTAMP"  # started longer ago than the late-arrival window
    CONTROL_CHARACTER = "CONTROL_CHARACTER"  # a text field holds a control character
    UNKNOWN_TECHNOLOGY = "UNKNOWN_TECHNOLOGY"
    UNKNOWN_CELL = "UNKNOWN_CELL"
    INVALID_RECORD_ID = "INVALID_RECORD_ID"
    # a record of a network element's file that could not be decoded into a CDR: collection
    # publishes it with its origin (source, file, index, bytes) and the decoder's error
    UNDECODABLE_RECORD = "UNDECODABLE_RECORD"
    # the same call as a record collected before, under another id (two sources reporting it, or a
    # file sent again renamed): collection names the kept record in the payload's `duplicate_of`
    DUPLICATE_CONTENT = "DUPLICATE_CONTENT"
    DUPLICATE = "DUPLICATE"  # decided against clean_cdrs, not by this module
    # The last line of defence: mediating or converting this one record raised (the exception's
    # class is in the reject); the record is rejected and the batch goes on.
    UNPROCESSABLE = "UNPROCESSABLE"
