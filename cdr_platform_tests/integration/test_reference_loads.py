"""The operator's reference files loaded into the real PostgreSQL as versions: by `cdr reference load`
and by the Dagster assets with CDR_REFERENCE_DIR set. Each test has a database of its own, so the
shared warehouse's reference tables are never touched."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import date

import dagster as dg
import psycopg
import pytest
from click.testing import CliRunner

from cdr_platform.cli import cdr
from cdr_platform.defs.ingest.assets import cell_catalogue, numbering_plan, subscribers
from cdr_platform.defs.ingest.checks import subscribers_match_numbering_plan
from cdr_platform.defs.resources import FilesResource, resources_for
from cdr_platform.lib.reference.loads import ReferenceLoadError, load
from cdr_platform.lib.reference.network import CELL_CATALOGUE, cells_of
from cdr_platform.lib.reference.operator_files import ReferenceFileError, generated_csv
from cdr_platform.lib.reference.tables import CELL_CATALOGUE_TABLE, cell_catalogue_rows
from cdr_platform.lib.settings import load_settings
from cdr_platform.lib.warehouse import replace_table
from cdr_platform.utils.environment_helpers import Environment

CELLS_HEADER = "cell_id,operator_id,network,region,lac,ci,max_technology,valid_from,valid_to"
SUBSCRIBERS_HEADER = "msisdn,operator_id,segment,plan,home_cell_id,valid_from,valid_to"
IAM_CELL, INWI_CELL = cells_of("IAM")[0], cells_of("INWI")[1]


def cells_file(count: int, region: str | None = None) -> bytes:
    """The first `count` generated cells as a cells file (all in `region` if given)."""
    lines = [CELLS_HEADER]
    for c in CELL_CATALOGUE[:count]:
        where = f"{c.network},{region or c.region},{c.lac},{c.ci}"
        lines.append(f"{c.cell_id},{c.operator_id},{where},{c.max_technology},2024-01-01,")
    return ("\n".join(lines) + "\n").encode()


SUBSCRIBERS = (
    "\n".join(
        [
            SUBSCRIBERS_HEADER,
            # a plan change on 2026-05-01
            f"+212610000001,IAM,consumer_prepaid,Jawal Prepaid,{IAM_CELL.cell_id},2025-01-01,2026-04-30",
            f"+212610000001,IAM,consumer_postpaid,Forfait 100,{IAM_CELL.cell_id},2026-05-01,",
            # terminated before the load day
            f"+212600000002,INWI,business,Business Pro,{INWI_CELL.cell_id},2025-01-01,2026-01-31",
        ]
    )
    + "\n"
).encode()


@pytest.fixture
def warehouse(local_stack, monkeypatch):
    """Settings pointing at a database created for the test (CDR_WAREHOUSE_DB too: the CLI and
    the code location's resources read it); dropped afterwards."""
    from cdr_platform.utils.local_postgres import admin_conninfo

    name = f"cdr_reftest_{uuid.uuid4().hex[:10]}"
    admin = admin_conninfo(local_stack, "postgres")  # the application's role may not create databases
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'create database {name} owner "{local_stack.warehouse.user}"')
    monkeypatch.setenv("CDR_WAREHOUSE_DB", name)
    yield dataclasses.replace(local_stack, warehouse=dataclasses.replace(local_stack.warehouse, database=name))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"drop database if exists {name} with (force)")


def query(settings, sql: str) -> list[tuple]:
    with psycopg.connect(settings.warehouse.conninfo()) as conn:
        return conn.execute(sql).fetchall()


def cdr_reference(*args: str):
    return CliRunner().invoke(cdr, ["reference", *args])


def test_cli_loads_versions_finds_the_same_file_unchanged_and_refuses_a_broken_file_whole(warehouse, tmp_path):
    path = tmp_path / "cells.csv"
    path.write_bytes(cells_file(10))
    first = cdr_reference("load", "cells", str(path))
    assert first.exit_code == 0, first.output
    assert first.output.startswith("cells: version 1 loaded from cells.csv (10 rows, sha256 ")

    path.write_bytes(cells_file(12))  # a changed file: version 2 replaces version 1's rows
    second = cdr_reference("load", "cells", str(path))
    assert second.exit_code == 0 and "cells: version 2 loaded from cells.csv (12 rows" in second.output
    v2_rows = query(warehouse, "select * from reference.cell_catalogue order by cell_id")
    assert len(v2_rows) == 12
    assert v2_rows[0][6:] == ("604-01", date(2024, 1, 1), None)  # network, valid_from, valid_to

    again = cdr_reference("load", "cells", str(path))  # byte for byte the current version
    assert again.exit_code == 0 and again.output.startswith("cells: unchanged, version 2 is cells.csv already")

    broken = cells_file(12).decode().splitlines()
    broken[5] = broken[5].replace(",2024-01-01,", ",2024-01-01,2023-01-01")  # line 6: ends before it starts
    broken.append("604-01-99999-00001,IAM,604-01,Rabat,1000,1,4G,2024-01-01,")  # line 14: its lac is not its CGI's
    path.write_text("\n".join(broken) + "\n")
    refused = cdr_reference("load", "cells", str(path))
    assert refused.exit_code == 1
    assert f"{path}:6: valid_to 2023-01-01 is before valid_from 2024-01-01" in refused.output
    assert f"{path}:14: lac 1000 is not the CGI's 99999" in refused.output
    assert f"cells: {path} refused (2 error(s)), nothing loaded" in refused.output

    # nothing of the broken file: version 2's rows and exactly two versions
    assert query(warehouse, "select * from reference.cell_catalogue order by cell_id") == v2_rows
    loads = query(warehouse, "select dataset, version, file_name, row_count, source from reference.reference_loads")
    assert sorted(loads) == [
        ("cells", 1, "cells.csv", 10, "cdr reference load"),
        ("cells", 2, "cells.csv", 12, "cdr reference load"),
    ]
    versions = cdr_reference("versions")
    assert versions.exit_code == 0
    lines = versions.output.splitlines()[1:]  # after the header; `*`: the current version
    assert [(line[0], *line[2:].split()[:3]) for line in lines] == [
        (" ", "cells", "1", "10"),
        ("*", "cells", "2", "12"),
    ]


def test_subscribers_hold_their_periods_and_the_one_in_force_named_and_placed_from_the_loaded_tables(warehouse):
    plan = generated_csv("numbering-plan").replace(b",INWI,inwi,", b",INWI,inwi Maroc,")
    with psycopg.connect(warehouse.warehouse.conninfo()) as conn:
        with pytest.raises(ReferenceLoadError, match="cell_catalogue is empty: load the cells first"):
            load(conn, "subscribers", SUBSCRIBERS, "subscribers.csv", source="test", day=date(2026, 4, 15))
        load(conn, "numbering-plan", plan, "numbering_plan.csv", source="test")
        load(conn, "cells", cells_file(120, region="Ifrane"), "cells.csv", source="test")
        result = load(conn, "subscribers", SUBSCRIBERS, "subscribers.csv", source="test", day=date(2026, 4, 15))
    assert (result.version, result.rows, result.unchanged) == (1, 3, False)
    assert query(
        warehouse,
        "select msisdn, plan, valid_from, valid_to, version from reference.subscriber_periods"
        " order by msisdn, valid_from",
    ) == [
        ("+212600000002", "Business Pro", date(2025, 1, 1), date(2026, 1, 31), 1),
        ("+212610000001", "Jawal Prepaid", date(2025, 1, 1), date(2026, 4, 30), 1),
        ("+212610000001", "Forfait 100", date(2026, 5, 1), None, 1),
    ]
    in_force = (
        "select msisdn, operator_id, operator_name, segment, plan, home_cell_id, home_region"
        " from reference.subscribers order by msisdn"
    )
    assert query(warehouse, in_force) == [
        # terminated: its latest period; the operator's name from the loaded plan, the region from the loaded cells
        ("+212600000002", "INWI", "inwi Maroc", "business", "Business Pro", INWI_CELL.cell_id, "Ifrane"),
        ("+212610000001", "IAM", "Maroc Telecom", "consumer_prepaid", "Jawal Prepaid", IAM_CELL.cell_id, "Ifrane"),
    ]

    # the same file a month later: no new version, but the plan change has come into force
    with psycopg.connect(warehouse.warehouse.conninfo()) as conn:
        later = load(conn, "subscribers", SUBSCRIBERS, "subscribers.csv", source="test", day=date(2026, 5, 15))
    assert (later.version, later.unchanged, later.repicked) == (1, True, 1)
    assert query(warehouse, in_force)[1][3:5] == ("consumer_postpaid", "Forfait 100")
    assert query(warehouse, "select count(*) from reference.reference_loads where dataset = 'subscribers'") == [(1,)]

    # a subscriber whose home cell the loaded catalogue lacks: refused, the periods stay
    unknown_cell = SUBSCRIBERS + b"+212612000003,ORANGE,business,Business Pro,604-00-09999-00001,2025-01-01,\n"
    with psycopg.connect(warehouse.warehouse.conninfo()) as conn, pytest.raises(ReferenceFileError) as caught:
        load(conn, "subscribers", unknown_cell, "subscribers.csv", source="test")
    assert [(e.line, e.reason) for e in caught.value.errors] == [
        (5, "home_cell_id 604-00-09999-00001 is not in the cell catalogue")
    ]
    assert len(query(warehouse, "select * from reference.subscriber_periods")) == 3


def test_the_assets_load_the_folder_of_CDR_REFERENCE_DIR_through_the_resource(warehouse, tmp_path, monkeypatch):
    folder = tmp_path / "operator"
    folder.mkdir()
    (folder / "cells.csv").write_bytes(cells_file(120, region="Ifrane"))
    (folder / "subscribers.csv").write_bytes(SUBSCRIBERS)  # no numbering_plan.csv: the generated plan
    monkeypatch.setenv("CDR_REFERENCE_DIR", str(folder))
    resources = resources_for(load_settings(), Environment.LOCAL)  # as the code location builds them
    assert resources["reference_files"].directory == str(folder)
    resources["files"] = FilesResource(data_dir=str(tmp_path / "data"))
    assets = [numbering_plan, cell_catalogue, subscribers, subscribers_match_numbering_plan]

    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(assets, instance=instance, resources=resources)
        assert result.success
        meta = {
            node: result.asset_materializations_for_node(node)[0].metadata
            for node in ("numbering_plan", "cell_catalogue", "subscribers")
        }
        assert meta["numbering_plan"]["source"].value == f"generated (no numbering_plan.csv in {folder})"
        assert meta["numbering_plan"]["file_name"].value == "generated"
        assert meta["cell_catalogue"]["source"].value == f"file {folder / 'cells.csv'}"
        assert (meta["cell_catalogue"]["version"].value, meta["cell_catalogue"]["rows"].value) == (1, 120)
        assert meta["cell_catalogue"]["unchanged"].value is False
        assert len(meta["cell_catalogue"]["sha256"].value) == 64
        assert (meta["subscribers"]["rows"].value, meta["subscribers"]["dagster/row_count"].value) == (3, 2)
        assert all(c.passed for c in result.get_asset_check_evaluations())
        assert query(warehouse, "select distinct home_region from reference.subscribers") == [("Ifrane",)]

        rerun = dg.materialize(assets, instance=instance, resources=resources)
        assert all(
            rerun.asset_materializations_for_node(node)[0].metadata["unchanged"].value
            for node in ("numbering_plan", "cell_catalogue", "subscribers")
        )

        (folder / "cells.csv").write_bytes(cells_file(120).replace(b",4G,2024-01-01,", b",4G,2024-01-01,2023-12-31", 1))
        failed = dg.materialize([cell_catalogue], instance=instance, resources=resources, raise_on_error=False)
        assert not failed.success
        error = failed.get_step_failure_events()[0].step_failure_data.user_failure_data.description
        assert "cells.csv refused: 1 error(s), nothing loaded (the current version stays)" in error
        assert "| line | reason |" in error and "valid_to 2023-12-31 is before valid_from 2024-01-01 |" in error
    assert query(warehouse, "select count(*), min(region), max(region) from reference.cell_catalogue") == [
        (120, "Ifrane", "Ifrane")
    ]
    assert query(
        warehouse, "select dataset, max(version) from reference.reference_loads group by dataset order by 1"
    ) == [
        ("cells", 1),
        ("numbering-plan", 1),
        ("subscribers", 1),
    ]


def test_without_CDR_REFERENCE_DIR_the_assets_load_the_generated_data_and_an_older_catalogue_gains_its_columns(
    warehouse, tmp_path, monkeypatch
):
    # a cell catalogue made before network, valid_from and valid_to existed
    with psycopg.connect(warehouse.warehouse.conninfo()) as conn:
        conn.execute("create schema reference")
        conn.execute(
            "create table reference.cell_catalogue (cell_id varchar(32) not null primary key,"
            " operator_id varchar(16) not null, region varchar(32) not null, lac int not null, ci int not null,"
            " max_technology varchar(4) not null)"
        )
        conn.execute("insert into reference.cell_catalogue values ('604-01-01000-00010', 'IAM', 'Old', 1000, 10, '2G')")
    monkeypatch.delenv("CDR_REFERENCE_DIR", raising=False)
    resources = {**resources_for(load_settings(), Environment.LOCAL), "files": FilesResource(data_dir=str(tmp_path))}
    result = dg.materialize([numbering_plan, cell_catalogue, subscribers], resources=resources)
    assert result.success
    meta = result.asset_materializations_for_node("cell_catalogue")[0].metadata
    assert meta["source"].value == "generated (CDR_REFERENCE_DIR is not set)"
    assert (meta["file_name"].value, meta["version"].value, meta["rows"].value) == ("generated", 1, 120)
    assert query(
        warehouse, "select count(*), count(network), min(valid_from), count(valid_to) from reference.cell_catalogue"
    ) == [(120, 120, date(2000, 1, 1), 0)]
    assert query(warehouse, "select count(*) from reference.subscribers") == [(300,)]
    assert (tmp_path / "reference" / "subscribers.csv").read_text().count("\n") == 301
    # replace_table (what tests and benchmarks write the catalogue with) migrates an older table too
    with psycopg.connect(warehouse.warehouse.conninfo()) as conn:
        conn.execute(
            "alter table reference.cell_catalogue drop column network, drop column valid_from, drop column valid_to"
        )
        conn.commit()
        assert replace_table(conn, CELL_CATALOGUE_TABLE, cell_catalogue_rows()) == 120
    assert query(warehouse, "select count(network) from reference.cell_catalogue") == [(120,)]
