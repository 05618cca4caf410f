"""The SQL Server path cannot run here: check the SQL it would send, as T-SQL."""

import pytest

from cdr_platform.lib.mediation.store import MediationTables
from cdr_platform.lib.settings import WarehouseSettings
from cdr_platform.lib.warehouse.dialects import POSTGRES, SQLSERVER
from cdr_platform.lib.warehouse.sql_lint import postgres_only_constructs
from cdr_platform_tests.sqlserver_recorder import tsql_problems


def statements(dialect) -> list[str]:
    t = MediationTables("mediation", dialect)
    return [
        *t.ddl(),
        *t.clear_staging_sql(),
        t.mark_duplicates_sql(),
        t.insert_clean_sql(),
        *t.merge_staged_rejects_sql(),
        t.count_staged_sql(),
        *t.replace_ledger_sql(),
        t.insert_ledger_offsets_sql(),
        t.insert_ledger_reason_sql(),
        t.duplicates_sql().format(query_id="q", batch_id=1),
    ]


@pytest.mark.parametrize("sql", statements(SQLSERVER))
def test_every_mediation_statement_parses_as_tsql_and_is_portable(sql):
    assert tsql_problems(sql) == [], sql


def test_the_lint_catches_what_postgres_alone_accepts():
    postgres_ddl = MediationTables("m", POSTGRES).ddl()
    staging = next(sql for sql in postgres_ddl if "m.clean_cdrs_staging (" in sql)
    assert "unlogged table" in postgres_only_constructs(staging)
    time_index = next(sql for sql in postgres_ddl if "start_time)" in sql)
    assert "index method other than B-tree" in postgres_only_constructs(time_index)
    assert postgres_only_constructs("select a::int from t limit 5") == [
        "'::' cast (use cast())",
        "limit (use top / fetch first)",
    ]
    assert postgres_only_constructs("insert into t values (1) on conflict do nothing")


def test_sqlserver_types_and_jdbc_settings():
    ddl = "\n".join(MediationTables("mediation", SQLSERVER).ddl())
    assert "datetime2" in ddl and "varbinary(max)" in ddl and "nvarchar(4000)" in ddl
    assert "if object_id(N'mediation.clean_cdrs', N'U') is null" in ddl
    assert "create index ix_clean_cdrs_start_time on mediation.clean_cdrs (start_time)" in ddl  # a B-tree
    wh = WarehouseSettings("db.example", 1433, "cdr", "etl", "", kind="sqlserver")
    assert wh.jdbc_url.startswith("jdbc:sqlserver://db.example:1433;databaseName=cdr;")
    assert "useBulkCopyForBatchInsert=true" in wh.jdbc_url
    assert wh.jdbc_driver == "com.microsoft.sqlserver.jdbc.SQLServerDriver"


def test_sqlserver_connections_verify_the_servers_certificate_unless_told_to_trust_it(monkeypatch):
    from cdr_platform.lib.settings import load_settings

    monkeypatch.setenv("CDR_ENV", "prod")
    monkeypatch.delenv("CDR_WAREHOUSE_TRUST_SERVER_CERTIFICATE", raising=False)
    verified = load_settings().warehouse
    assert verified.kind == "sqlserver"
    assert "encrypt=true;trustServerCertificate=false;" in verified.jdbc_url
    assert "Encrypt=yes;TrustServerCertificate=no" in verified.odbc_connection_string()
    monkeypatch.setenv("CDR_WAREHOUSE_TRUST_SERVER_CERTIFICATE", "true")  # a development server only
    trusted = load_settings().warehouse
    assert "trustServerCertificate=true;" in trusted.jdbc_url
    assert "TrustServerCertificate=yes" in trusted.odbc_connection_string()
    monkeypatch.setenv("CDR_WAREHOUSE_TRUST_SERVER_CERTIFICATE", "maybe")
    with pytest.raises(ValueError, match="CDR_WAREHOUSE_TRUST_SERVER_CERTIFICATE"):
        load_settings()


def test_the_dbt_sqlserver_profile_verifies_the_certificate_by_default():
    import yaml

    from cdr_platform.lib.settings import REPO_ROOT

    profile = yaml.safe_load((REPO_ROOT / "dbt_project" / "profiles.yml").read_text())
    trust = profile["cdr_platform"]["outputs"]["sqlserver"]["trust_cert"]
    assert "CDR_WAREHOUSE_TRUST_SERVER_CERTIFICATE" in trust and "'false'" in trust


def rating_statements() -> list[str]:
    from datetime import date

    from cdr_platform.lib.rating.store import RatingTables

    tables = RatingTables("rating", SQLSERVER)
    load = tables.day_load(date(2026, 11, 20), "abc123")
    return [
        tables.lock_sql(date(2026, 11, 20)),
        tables.lock_sql(date(2026, 11, 20), release=True),
        *tables.ddl(),
        tables.rated_columns_sql(),
        *tables.carry_clean_columns_sql("mediation.clean_cdrs", present=set()),
        load.stale_work_sql(),
        *load.create_work_sql({"rated_at": "2026-11-20 23:00:00", "currency": "MAD"}),
        *load.swap_sql(set()),
    ]


@pytest.mark.parametrize("sql", rating_statements())
def test_every_rating_day_replace_statement_parses_as_tsql_and_is_portable(sql):
    assert tsql_problems(sql) == [], sql


def test_on_sqlserver_a_day_is_replaced_by_delete_and_insert_in_one_transaction():
    swap = " ; ".join(rating_statements()[-7:])
    assert "delete from rating.rating_cdrs where rating_day = '2026-11-20'" in swap
    # by column name: a table migrated by an earlier version has the carried clean columns last
    assert "insert into rating.rating_cdrs (record_id, rating_day, " in swap
    assert " from rating.rating_cdrs_d20261120_wabc123" in swap and "select *" not in swap
    assert "partition" not in swap


def test_on_sqlserver_a_rating_table_from_an_earlier_version_gets_the_clean_columns_from_clean_cdrs():
    from cdr_platform.lib.rating.store import CARRIED_CLEAN_COLUMNS, RatingTables

    tables = RatingTables("rating", SQLSERVER)
    migration = tables.carry_clean_columns_sql("mediation.clean_cdrs", present={"record_id", "technology"})
    added = [c.name for c in CARRIED_CLEAN_COLUMNS if c.name != "technology"]
    assert migration[:-1] == [
        f"if col_length(N'rating.rating_cdrs', N'{name}') is null alter table rating.rating_cdrs add {name} "
        + next(c for c in CARRIED_CLEAN_COLUMNS if c.name == name).sql_type(SQLSERVER)
        for name in added
    ]
    assert migration[-1].startswith("update r set served_operator_id = c.served_operator_id, ")
    assert "technology = c.technology" not in migration[-1]
    assert "inner join mediation.clean_cdrs c on c.record_id = r.record_id" in migration[-1]
    assert tables.carry_clean_columns_sql("mediation.clean_cdrs", present={c.name for c in CARRIED_CLEAN_COLUMNS}) == []
