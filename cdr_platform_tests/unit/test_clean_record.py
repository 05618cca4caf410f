"""One declaration of the clean record (lib.schema): the DDL, the bulk path, the Spark jobs and the
asset checks' SQL all follow it, and so do the technology list and the record-id rule."""

import re
from datetime import UTC, datetime

import orjson
import pyarrow as pa
import pytest

from cdr_platform.defs.mediation.checks import violations_sql
from cdr_platform.lib.mediation.bulk import CLEAN_SCHEMA, mediate_batch
from cdr_platform.lib.mediation.reasons import Reason
from cdr_platform.lib.mediation.rules import mediate
from cdr_platform.lib.mediation.store import MediationTables
from cdr_platform.lib.mediation.tasks import OUTPUT_DDL
from cdr_platform.lib.rating.tasks import INPUT_DDL
from cdr_platform.lib.reference import network
from cdr_platform.lib.schema import CLEAN_CDRS_COLUMNS, CLEAN_COLUMNS, CLEAN_RECORD, TECHNOLOGIES, is_valid_record_id
from cdr_platform.lib.spark.session import arrow_schema_from_ddl
from cdr_platform.lib.warehouse.dialects import POSTGRES, SQLSERVER
from cdr_platform_tests.unit.test_mediation_bulk import GOOD

RECEIVED = datetime(2026, 11, 3, 12, tzinfo=UTC)


@pytest.mark.parametrize("dialect", [POSTGRES, SQLSERVER], ids=lambda d: d.name)
def test_clean_cdrs_ddl_has_every_declared_column_with_its_dialects_type(dialect):
    ddl = next(s for s in MediationTables("mediation", dialect).ddl() if "clean_cdrs (" in s)
    declared = re.findall(r"^    (\w+) ([^,\n]+?)(?: not null)?,?$", ddl, re.M)
    columns = dict(declared)
    for column in CLEAN_CDRS_COLUMNS:
        assert columns[column.name] == column.sql_type(dialect)
        assert (f"    {column.name} {column.sql_type(dialect)} not null" in ddl) == (not column.nullable)
    assert [name for name, _ in declared][: len(CLEAN_CDRS_COLUMNS)] == [c.name for c in CLEAN_CDRS_COLUMNS]


def test_the_bulk_path_and_the_spark_schemas_use_the_declared_types():
    assert CLEAN_SCHEMA.names == list(CLEAN_COLUMNS)
    assert [f.type for f in CLEAN_SCHEMA] == [c.arrow_type() for c in CLEAN_RECORD]
    output = arrow_schema_from_ddl(OUTPUT_DDL)
    for column in CLEAN_CDRS_COLUMNS:
        assert output.field(column.name).type == column.arrow_type()
    rating_input = arrow_schema_from_ddl(INPUT_DDL)
    for column in CLEAN_RECORD:
        if column.name in rating_input.names:
            assert rating_input.field(column.name).type == column.arrow_type()


def test_a_clean_record_from_either_path_has_exactly_the_declared_columns():
    payload = orjson.dumps(GOOD)
    plain = mediate(payload, RECEIVED)
    assert plain.record is not None and tuple(plain.record) == CLEAN_COLUMNS
    bulk = mediate_batch([payload], pa.array([int(RECEIVED.timestamp() * 1e6)]).to_numpy())
    assert bulk.clean.schema == CLEAN_SCHEMA and bulk.clean.to_pylist() == [plain.record]


def test_the_completeness_check_covers_every_mandatory_column_and_the_technology_list():
    rules = violations_sql()
    for column in CLEAN_RECORD:
        if not column.nullable:
            assert f"{column.name} is null" in rules["mandatory column null"]
    assert all(f"'{t}'" in rules["technology not normalised"] for t in TECHNOLOGIES)


def test_the_cell_catalogue_draws_on_the_schemas_technology_list():
    assert {c.max_technology for c in network.CELL_CATALOGUE} <= set(TECHNOLOGIES)


@pytest.mark.parametrize("record_id", ["r1\n", "r1\r\n", "\nr1", "r1 ", "-r1", "r" * 65, ""])
def test_a_record_id_is_matched_whole_by_both_paths(record_id):
    assert not is_valid_record_id(record_id)
    payload = orjson.dumps({**GOOD, "record_id": record_id})
    assert mediate(payload, RECEIVED).reasons
    bulk = mediate_batch([payload], pa.array([int(RECEIVED.timestamp() * 1e6)]).to_numpy())
    assert bulk.clean.num_rows == 0 and bulk.rejected and bulk.rejected[0][1] == mediate(payload, RECEIVED).reasons


def test_a_record_id_with_a_trailing_newline_is_rejected_and_r1_stays_one_record():
    # "r1" and "r1\n" were two clean records that escaped de-duplication ($ matched before "\n")
    assert mediate(orjson.dumps(GOOD), RECEIVED).record is not None
    assert mediate(orjson.dumps({**GOOD, "record_id": "r1\n"}), RECEIVED).reasons == (Reason.CONTROL_CHARACTER,)
    assert not is_valid_record_id("r1\n")  # and the record-id rule alone refuses it
