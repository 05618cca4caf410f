"""`cdr`: the platform's one command line. `cdr --help`, and `--help` on every command.

    cdr stack up | down | status | setup      the local stack (Kafka, PostgreSQL, jars)
    cdr demo                                  the main job end to end, with a summary
    cdr generate --count N                    synthetic CDRs into raw-cdrs
    cdr mediate [--continuous]                raw-cdrs -> clean_cdrs + error-cdrs (Spark)
    cdr rate --day YYYY-MM-DD                 one day of clean CDRs -> rating_cdrs (Spark)
    cdr rating conformance --plans --cases    the CGRateS conformance cases
    cdr rating write-default-plan             the demo tariff as dbt seeds
    cdr rejects list | show | replay | discard the reject store: after a correction, replay
    cdr screenshots                           the README's pictures: asset graph, dashboard

`cdr mediate` and `cdr rate` are also what the Dagster assets launch, through Dagster Pipes:
run that way they report their materializations to the Dagster run; run by hand they print a
summary. Settings come from the environment (README, "Settings").

With CDR_ENV=prod, `cdr demo` and `cdr generate` refuse to run (production's raw-cdrs carries the
network's CDRs only), and every other command refuses unsafe settings, listing every problem
(utils/environment_helpers.require_safe_production); `cdr settings` alone, the documentation, runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import click

from cdr_platform.lib import asset_keys
from cdr_platform.lib.asset_keys import user_string
from cdr_platform.utils.signals import restore_default_interrupts

log = logging.getLogger("cdr_platform.cli")


def _configure_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("py4j", "kafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _fail(message: str) -> None:
    """One line for the operator on stderr (the trace is in the log above it), exit code 1; also
    into the failure file a Dagster run gave (it becomes the run's error)."""
    from cdr_platform.lib.settings import FAILURE_FILE_ENV, setting

    line = message.splitlines()[0][:2000]
    click.echo(line, err=True)
    try:
        failure_file = setting(FAILURE_FILE_ENV)
    except ValueError:  # an invalid setting is what is being reported
        failure_file = None
    if failure_file:
        failure_file.write_text(line + "\n")
    sys.exit(1)


def _setting(name: str):
    from cdr_platform.lib.settings import setting

    return setting(name)


@contextlib.contextmanager
def _dagster_pipes():
    """The Dagster Pipes context when a Dagster asset launched this process, else None."""
    from dagster_pipes import PipesEnvVarParamsLoader, open_dagster_pipes

    if not PipesEnvVarParamsLoader().is_dagster_pipes_process():
        yield None
        return
    with open_dagster_pipes() as pipes:
        yield pipes


_HELP_OPTIONS = ("-h", "--help")
# they refuse production themselves (synthetic CDRs), whatever its settings; `settings` checks them
_NO_PRODUCTION_CHECK = ("demo", "generate", "settings")


def _refuse_unsafe_production() -> None:
    """With CDR_ENV=prod and unsafe settings: every problem on stderr (and in a Dagster run's failure
    file), exit code 1. An invalid setting is left to the command, which names it."""
    from cdr_platform.lib.settings import SettingError, load_settings
    from cdr_platform.utils.environment_helpers import require_safe_production

    try:
        settings = load_settings()
    except SettingError:
        return
    try:
        require_safe_production(settings)
    except SettingError as exc:
        click.echo(str(exc), err=True)
        if settings.failure_file:
            settings.failure_file.write_text(str(exc) + "\n")
        sys.exit(1)


def _refuse_synthetic_traffic(command: str) -> None:
    """`command` writes synthetic CDRs: with CDR_ENV=prod, one line on stderr and exit code 1."""
    from cdr_platform.utils.environment_helpers import synthetic_traffic_refusal

    refusal = synthetic_traffic_refusal(command)
    if refusal:
        _fail(refusal)


class _CdrGroup(click.Group):
    """Notes whether the command line asks for help: help is shown whatever the settings."""

    def resolve_command(self, ctx: click.Context, args: list[str]):
        ctx.meta["cdr.asks_help"] = any(arg in _HELP_OPTIONS for arg in args)
        return super().resolve_command(ctx, args)


@click.group(cls=_CdrGroup, context_settings={"help_option_names": list(_HELP_OPTIONS)})
@click.pass_context
def cdr(ctx: click.Context) -> None:
    """The telecom CDR platform: Kafka, Spark mediation and rating, dbt, Dagster."""
    if ctx.invoked_subcommand not in _NO_PRODUCTION_CHECK and not ctx.meta.get("cdr.asks_help"):
        _refuse_unsafe_production()


# -- the local stack --------------------------------------------------------------------------


@cdr.group()
def stack() -> None:
    """The local stack without Docker: Kafka (KRaft) and PostgreSQL on 127.0.0.1."""


_ONLY = click.option("--only", type=click.Choice(["kafka", "postgres"]), help="Act on one service.")


def _stack_call(fn) -> None:
    from cdr_platform.utils.local_stack import StackError

    try:
        fn()
    except StackError as exc:
        raise click.ClickException(str(exc)) from None


@stack.command()
@_ONLY
def up(only: str | None) -> None:
    """Fetch the jars if needed, start the services, create the topics (idempotent)."""
    from cdr_platform.lib.settings import load_settings
    from cdr_platform.utils import local_stack

    _stack_call(lambda: local_stack.up(load_settings(), (only,) if only else ("postgres", "kafka")))
    settings = load_settings()
    if settings.dagster_home:  # make sets it: `make dev` then runs the local instance
        from cdr_platform.utils import dagster_instance

        dagster_instance.prepare(settings.dagster_home)


@stack.command()
@_ONLY
def down(only: str | None) -> None:
    """Stop exactly what `cdr stack up` started."""
    from cdr_platform.lib.settings import load_settings
    from cdr_platform.utils import local_stack

    _stack_call(lambda: local_stack.down(load_settings(), (only,) if only else ("postgres", "kafka")))


@stack.command()
def status() -> None:
    """Show each service, its address and its log; exit 3 when one is stopped."""
    from cdr_platform.lib.settings import load_settings
    from cdr_platform.utils import local_stack

    if not all(local_stack.status(load_settings()).values()):
        sys.exit(3)


@stack.command("env")
@click.option("--sasl-ssl", is_flag=True, required=True, help="Clients of the local broker's SASL_SSL listener.")
def stack_env(sasl_ssl: bool) -> None:
    """Print the settings (`export` lines) that put every Kafka client on the local broker's SASL_SSL
    listener: SCRAM-SHA-512 as the stack's user, its CA verified. The password stays in its file.

        eval "$(cdr stack env --sasl-ssl)"
    """
    import shlex

    from cdr_platform.lib.settings import load_settings
    from cdr_platform.utils import local_stack

    for name, value in local_stack.local_sasl_ssl_environment(load_settings(), with_password=False).items():
        click.echo(f"export {name}={shlex.quote(value)}")


@stack.command()
def setup() -> None:
    """Fetch the jars (Kafka, Spark's connector, JDBC drivers) and record Spark's class-data archive."""
    from cdr_platform.lib.settings import load_settings
    from cdr_platform.lib.spark import startup_archive
    from cdr_platform.utils import local_stack

    settings = load_settings()
    _stack_call(lambda: local_stack.fetch_jars(settings))
    startup_archive.record(settings)  # a missing archive only costs start-up time: never fails


# -- the demo ---------------------------------------------------------------------------------


@cdr.command()
@click.option(
    "--count",
    type=int,
    default=lambda: _setting("DEMO_CDR_COUNT"),
    show_default="100000 (DEMO_CDR_COUNT)",
    help="CDRs to generate.",
)
@click.option(
    "--seed",
    type=int,
    default=lambda: _setting("DEMO_SEED"),
    show_default="42 (DEMO_SEED)",
    help="Generator seed (the same seed sends the same record ids).",
)
@click.option(
    "--producer",
    type=click.Choice(["kafka-python", "confluent"]),
    default=lambda: _setting("DEMO_PRODUCER"),
    show_default="kafka-python",
)
def demo(count: int, seed: int, producer: str) -> None:
    """Run the main job on the local stack (the stack must be up): one line per stage, a summary,
    and every log in a file under .stack/logs/. Refused with CDR_ENV=prod."""
    _refuse_synthetic_traffic("cdr demo")
    from cdr_platform.demo import run_demo

    sys.exit(run_demo(count=count, seed=seed, producer=producer))


# -- generate ---------------------------------------------------------------------------------


@cdr.command()
@click.option("--count", type=int, default=100_000, show_default=True, help="CDRs to produce.")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--error-rate", type=float, default=0.05, show_default=True, help="Share of records spoiled on purpose.")
@click.option("--error-classes", default=None, help="Comma-separated injected error classes (default: all).")
@click.option("--start-time", default=None, help="ISO-8601 start of the traffic (default: midnight UTC yesterday).")
@click.option("--span-hours", type=float, default=24.0, show_default=True)
@click.option("--rate-limit", type=float, default=0.0, show_default=True, help="Records per second; 0: no limit.")
@click.option("--producer", type=click.Choice(["kafka-python", "confluent"]), default="kafka-python", show_default=True)
@click.option("--topic", default=None, help="Target topic (default: CDR_RAW_TOPIC, raw-cdrs).")
def generate(
    count: int,
    seed: int,
    error_rate: float,
    error_classes: str | None,
    start_time: str | None,
    span_hours: float,
    rate_limit: float,
    producer: str,
    topic: str | None,
) -> None:
    """Generate synthetic voice, SMS and data CDRs and produce them into raw-cdrs. Refused with CDR_ENV=prod."""
    _refuse_synthetic_traffic("cdr generate")
    from cdr_platform.lib.ingest.generator import GeneratorConfig, default_start_time, parse_error_classes
    from cdr_platform.lib.ingest.produce import produce_cdrs
    from cdr_platform.lib.ingest.producers import make_producer
    from cdr_platform.lib.settings import load_settings

    settings = load_settings()
    start = default_start_time()
    if start_time:
        start = datetime.fromisoformat(start_time.replace("Z", "+00:00"))
        start = start if start.tzinfo else start.replace(tzinfo=UTC)
    config = GeneratorConfig(
        count=count,
        seed=seed,
        error_rate=error_rate,
        start_time=start,
        span_hours=span_hours,
        error_classes=parse_error_classes(error_classes.split(",") if error_classes else None),
    )
    topic = topic or settings.kafka.raw_cdrs_topic
    client = make_producer(producer, settings.kafka)
    try:
        with click.progressbar(length=count, label=f"producing to {topic}", file=sys.stderr) as bar:
            sent = [0]

            def advance(records: int) -> None:
                bar.update(records - sent[0])
                sent[0] = records

            report = produce_cdrs(
                config,
                client,
                settings.kafka,
                topic,
                rate_limit=rate_limit or None,
                progress=log.debug,
                on_records=advance,
            )
    finally:
        client.close()
    click.echo(
        f"produced {report.records:,} CDRs to {topic} in {report.seconds:.1f} s "
        f"({report.records_per_second:,.0f}/s; {report.valid_records:,} valid)"
    )


# -- mediation --------------------------------------------------------------------------------


def _mediation_metadata(summary: dict, error_topic: str) -> dict[str, dict]:
    """What a mediation run reports to Dagster, per asset key."""
    from cdr_platform.lib.markdown import markdown_table

    reasons = [{"reason": k, "records": v} for k, v in sorted(summary["rejected_by_reason"].items())]
    common = {
        "rows_in": summary["rows_in"],
        "batches": summary["batches"],
        "rows_per_second": summary["rows_per_second"],
        "seconds": summary["seconds"],
        "query_id": summary["query_id"] or "",
        "balanced": summary["balanced"],
    }
    return {
        user_string(asset_keys.CLEAN_CDRS): {
            **common,
            "clean": summary["clean"],
            "rejected": summary["rejected"],
            "duplicates": summary["duplicates"],
            "dagster/row_count": summary["clean"],
            "offsets": {"raw_value": summary["offsets"], "type": "json"},
            # the local days whose clean CDRs this run stored: the rating partitions it changed
            "clean_by_day": {"raw_value": summary["clean_by_day"], "type": "json"},
            "table": summary["table"],
        },
        user_string(asset_keys.MEDIATION_LEDGER): {
            **common,
            "clean": summary["clean"],
            "rejected": summary["rejected"],
            "duplicates": summary["duplicates"],
            "dagster/row_count": summary["batches"],
        },
        user_string(asset_keys.LEDGER_REASONS): {
            **common,
            "rejected_by_reason": {"raw_value": markdown_table(reasons), "type": "md"},
        },
        user_string(asset_keys.ERROR_CDRS): {
            **common,
            "rejected": summary["rejected"],
            "duplicates": summary["duplicates"],
            "rejected_by_reason": {"raw_value": markdown_table(reasons), "type": "md"},
            "topic": error_topic,
        },
        user_string(asset_keys.REJECT_STORE): {
            **common,
            "stored_rejects": summary["rejected"],
            "stored_duplicates": summary["duplicates"],
            "dagster/row_count": summary["rejected"] + summary["duplicates"],
            "rejected_by_reason": {"raw_value": markdown_table(reasons), "type": "md"},
        },
    }


@cdr.command()
@click.option(
    "--continuous",
    is_flag=True,
    help="A micro-batch every interval until Ctrl-C / SIGTERM "
    "(default: bounded, everything in raw-cdrs now, then stop).",
)
@click.option("--interval", default="1 second", show_default=True, help="Trigger interval in continuous mode.")
@click.option(
    "--max-offsets-per-trigger",
    type=int,
    default=None,
    help="Messages per micro-batch at most (default: CDR_MEDIATION_MAX_OFFSETS_PER_TRIGGER, 250000).",
)
@click.option("--schema", default=None, help="Warehouse schema (default: CDR_MEDIATION_SCHEMA, mediation).")
@click.option("--raw-topic", default=None)
@click.option("--error-topic", default=None)
@click.option("--checkpoint", default=None, help="Streaming checkpoint (default: per environment under .stack/).")
def mediate(
    continuous: bool,
    interval: str,
    max_offsets_per_trigger: int | None,
    schema: str | None,
    raw_topic: str | None,
    error_topic: str | None,
    checkpoint: str | None,
) -> None:
    """Mediate raw-cdrs into clean_cdrs and error-cdrs with Spark Structured Streaming (exactly once)."""
    from cdr_platform.lib.mediation import job
    from cdr_platform.lib.settings import load_settings

    _configure_logging()
    settings = load_settings()
    error_topic = error_topic or settings.kafka.error_cdrs_topic
    with _dagster_pipes() as pipes:
        try:
            summary = job.run(
                job.MediationOptions(
                    continuous=continuous,
                    interval=interval,
                    max_offsets_per_trigger=max_offsets_per_trigger,
                    schema=schema,
                    raw_topic=raw_topic,
                    error_topic=error_topic,
                    checkpoint=checkpoint,
                    run_id=settings.run_id or None,
                    settings=settings,
                    progress=pipes.log.info if pipes else None,
                )
            )
        except Exception as exc:  # one clear line for the operator, the trace in the log above
            log.exception("mediation failed")
            _fail(f"mediation failed: {exc}")
        click.echo(job.SUMMARY_PREFIX + json.dumps(summary))
        if pipes:
            for key, metadata in _mediation_metadata(summary, error_topic).items():
                pipes.report_asset_materialization(asset_key=key, metadata=metadata)
    if not summary["balanced"]:
        _fail("mediation did not balance: rows in != clean + rejected + duplicates")


# -- rating -----------------------------------------------------------------------------------


def _rating_metadata(summary: dict) -> dict:
    from cdr_platform.lib.markdown import markdown_table

    revenue = [{"record type": k, "revenue (MAD)": v} for k, v in summary["revenue_by_type"].items()]
    suspense = [{"reason": k, "records": v} for k, v in sorted(summary["suspended_by_reason"].items())]
    return {
        "dagster/row_count": {"raw_value": summary["rated"], "type": "int"},
        "input": summary["input"],
        "rated": summary["rated"],
        "suspended": summary["suspended"],
        "revenue_total": {"raw_value": float(Decimal(summary["revenue_total"])), "type": "float"},
        "revenue_by_type": {"raw_value": markdown_table(revenue), "type": "md"},
        "suspended_by_reason": {"raw_value": markdown_table(suspense), "type": "md"},
        "rows_per_second": summary["rows_per_second"],
        "seconds": summary["seconds"],
        "rated_by_plain_engine": summary["plain_engine_rows"],
        "slices": summary["slices"],
        **({"warehouse_connections": summary["warehouse_connections"]} if "warehouse_connections" in summary else {}),
    }


def _rerating_metadata(summary: dict) -> dict:
    """The re-rating report as metadata: its totals and a markdown table of the largest changes."""
    from cdr_platform.lib.rating.rerating import markdown_report

    r = summary["rerating"]
    return {
        "rerating_report": {"raw_value": markdown_report(r, r["top"], len(r["top"])), "type": "md"},
        "subscribers_changed": r["subscribers_changed"],
        "rerating_old_total": r["old_total"],
        "rerating_new_total": r["new_total"],
        "rerating_delta": r["delta"],
        "rerated_days": ", ".join(r["rerated_days"]) or "none",
        "first_rated_days": ", ".join(r["first_rated_days"]) or "none",
        "rerating_report_id": r["report_id"],
    }


def _rating_range(day: datetime | None, first: datetime | None, last: datetime | None) -> tuple[date, date]:
    """The days `cdr rate` rates: --day D, or --from D1 --to D2 (inclusive, not backwards)."""
    if day is not None:
        if first is not None or last is not None:
            raise click.UsageError("give --day, or --from and --to, not both")
        return day.date(), day.date()
    if first is None or last is None:
        raise click.UsageError("give --day D, or a range: --from D1 --to D2 (both)")
    if first > last:
        raise click.BadParameter(f"{last:%Y-%m-%d} is before --from {first:%Y-%m-%d}", param_hint="--to")
    return first.date(), last.date()


_RATING_DAY = click.DateTime(["%Y-%m-%d"])


@cdr.command()
@click.option("--day", type=_RATING_DAY, default=None, help="The local day to rate (CDR_TARIFF_TIMEZONE).")
@click.option("--from", "first", type=_RATING_DAY, default=None, help="First local day of a range to (re-)rate.")
@click.option("--to", "last", type=_RATING_DAY, default=None, help="Last local day of the range (inclusive).")
def rate(day: datetime | None, first: datetime | None, last: datetime | None) -> None:
    """Rate local days of clean CDRs into rating_cdrs (and rating_suspense); a re-run replaces a day.

    --day D rates one day; --from D1 --to D2 re-rates a range in order (after a tariff correction),
    with a re-rating report per subscriber (old cost, new cost, delta) kept in rating.rerating_report.
    """
    from cdr_platform.lib.rating import job

    days = _rating_range(day, first, last)
    _configure_logging()
    with _dagster_pipes() as pipes:
        try:
            summary = job.rate_days(
                *days,
                run_id=_setting("CDR_RUN_ID") or None,
                progress=pipes.log.info if pipes else log.info,
            )
        except Exception as exc:
            from cdr_platform.lib.spark.session import root_cause

            log.exception("rating failed")
            _fail(f"rating failed: {root_cause(exc)}")
        click.echo(job.SUMMARY_PREFIX + json.dumps(summary))
        if pipes:
            metadata = _rating_metadata(summary)
            rerating = _rerating_metadata(summary)
            range_meta = {"rated_from": summary["from"], "rated_to": summary["to"]}
            pipes.report_asset_materialization(
                asset_key=user_string(asset_keys.RATING_CDRS),
                # the report shows where a day was re-rated (a first rating has nothing to compare)
                metadata={**metadata, **range_meta, **(rerating if summary["rerating"]["rerated_days"] else {})},
            )
            pipes.report_asset_materialization(
                asset_key=user_string(asset_keys.RATING_SUSPENSE),
                metadata={
                    "dagster/row_count": {"raw_value": summary["suspended"], "type": "int"},
                    "suspended": summary["suspended"],
                    "suspended_by_reason": metadata["suspended_by_reason"],
                },
            )
            pipes.report_asset_materialization(
                asset_key=user_string(asset_keys.RERATING_REPORT),
                metadata={
                    "dagster/row_count": {"raw_value": summary["rerating"]["report_rows"], "type": "int"},
                    "table": summary["rerating"]["report_table"],
                    **range_meta,
                    **rerating,
                },
            )


@cdr.group()
def rating() -> None:
    """The tariff plan and its conformance with CGRateS."""


@rating.command()
@click.option(
    "--plans",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of tariff-plan folders (CGRateS TP CSV files).",
)
@click.option(
    "--cases",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Cases CSV (case_id, tp_dir, ..., expected_cost).",
)
def conformance(plans: Path, cases: Path) -> None:
    """Rate the CGRateS conformance cases: one line per case, then `N passed, M failed`; exit 1 on a failure."""
    from cdr_platform.lib.rating.conformance import run_cases

    _, failed = run_cases(plans, cases)
    sys.exit(1 if failed else 0)


@rating.command("write-default-plan")
def write_default_plan() -> None:
    """Write the demo operator's tariff as the dbt seeds in dbt_project/seeds/tariff/."""
    from cdr_platform.lib.rating.default_plan import write_seeds

    for path in write_seeds():
        click.echo(path)


@cdr.group()
def rejects() -> None:
    """The reject store: list, show, replay after a correction, discard (README, "Rejects")."""


_REASON = click.option("--reason", default=None, help="A reason code (README, rejection reasons).")
_SINCE = click.option(
    "--since", type=click.DateTime(formats=["%Y-%m-%d"]), default=None, help="Rejected on or after this local day."
)


def _reject_store():
    """The configured warehouse's reject store: (settings, connection, tables)."""
    from cdr_platform.lib.mediation.store import create_tables, tables_for
    from cdr_platform.lib.settings import load_settings
    from cdr_platform.lib.warehouse import connect

    settings = load_settings()
    tables = tables_for(settings)
    conn = connect(settings.warehouse)
    create_tables(conn, tables)  # a warehouse mediation never ran on has an empty store
    return settings, conn, tables


def _table(rows: list[dict]) -> str:
    if not rows:
        return "(none)"
    columns = list(rows[0])
    cells = [
        [("" if r[c] is None else f"{r[c]:,}" if isinstance(r[c], int) else str(r[c])) for c in columns] for r in rows
    ]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


@rejects.command("list")
@_REASON
@_SINCE
@click.option("--status", default=None, help="open, replayed, recovered, discarded or duplicate.")
@click.option("--limit", type=int, default=20, show_default=True, help="Records listed after the counts.")
def rejects_list(reason: str | None, since: datetime | None, status: str | None, limit: int) -> None:
    """Counts by reason, day and status, then the first records."""
    from cdr_platform.lib.mediation import reject_store as store

    _, conn, tables = _reject_store()
    try:
        with conn:
            filters = {"reason": reason, "since": since.date() if since else None, "status": status}
            click.echo(_table(store.counts_by_reason_and_day(conn, tables, **filters)))
            records = store.list_records(conn, tables, limit=limit, **filters)
            if records:
                click.echo("")
                click.echo(_table(records))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


@rejects.command("show")
@click.argument("key")
def rejects_show(key: str) -> None:
    """Everything stored of the message at KEY (topic:partition:offset), its whole payload included."""
    from cdr_platform.lib.mediation import reject_store as store

    _, conn, tables = _reject_store()
    with conn:
        try:
            found = store.show(conn, tables, key)
        except ValueError:
            raise click.ClickException(f"{key!r} is not a reject key (topic:partition:offset)") from None
    if not found:
        raise click.ClickException(f"no reject stored at {key}")
    for verdict in found:
        payload = verdict.pop("payload")
        message_key = verdict.pop("message_key")
        for name, value in verdict.items():
            click.echo(f"{name:20} {'' if value is None else value}")
        click.echo(f"{'message_key':20} {_printable(message_key)}")
        click.echo(f"{'payload':20} {_printable(payload)}")
        click.echo("")


def _printable(raw) -> str:
    if raw is None:
        return ""
    import base64

    raw = bytes(raw)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(raw).decode("ascii")


@rejects.command("replay")
@click.option("--reason", required=True, help="The reason code whose open rejects are replayed.")
@_SINCE
@click.option("--dry-run", is_flag=True, help="Mediate them and say what would be recovered; change nothing.")
def rejects_replay(reason: str, since: datetime | None, dry_run: bool) -> None:
    """Send the open rejects of a reason through mediation again, after a correction."""
    from cdr_platform.lib.mediation import reject_store as store
    from cdr_platform.lib.mediation.job import load_known_cells
    from cdr_platform.lib.mediation.rules import Limits
    from cdr_platform.lib.tariff_clock import TariffClock

    settings, conn, tables = _reject_store()
    with conn:
        try:
            limits = Limits.from_settings(settings, load_known_cells(conn))
            outcome = store.replay(
                conn,
                tables,
                reason=reason,
                since=since.date() if since else None,
                dry_run=dry_run,
                limits=limits,
                clock=TariffClock(settings.tariff_timezone),
            )
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    summary = outcome.as_dict()
    verb = "would recover" if dry_run else "recovered"
    click.echo(
        f"{outcome.replay_id}: {outcome.selected:,} {reason} rejects replayed, {verb} {outcome.recovered:,},"
        f" {outcome.still_open:,} still open, {outcome.duplicates:,} duplicates"
    )
    if outcome.reasons_now:
        click.echo("still failing: " + ", ".join(f"{k} {v:,}" for k, v in summary["reasons_now"].items()))
    if outcome.clean_by_day and not dry_run:
        click.echo("days to rate: " + ", ".join(summary["clean_by_day"]))
        if _report_replay_to_dagster(summary):
            click.echo("reported to Dagster (DAGSTER_HOME): the rating sensor rates those days")
        else:
            click.echo("rate them with `cdr rate --day D` (or run the replay_rejects job in Dagster)")
    click.echo(store.REPLAY_SUMMARY_PREFIX + json.dumps(summary))


def _report_replay_to_dagster(summary: dict) -> bool:
    """A replay by hand tells the Dagster instance (DAGSTER_HOME) what it stored, as the replay job
    does: a materialization of clean_cdrs with clean_by_day, which the rating sensor follows."""
    from cdr_platform.lib.settings import setting

    home = setting("DAGSTER_HOME")
    if not home or not home.is_dir():  # no Dagster instance here (make sets the variable anyway)
        return False
    import dagster as dg

    try:
        with dg.DagsterInstance.get() as instance:
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    asset_keys.CLEAN_CDRS,
                    description=f"cdr rejects replay {summary['replay_id']}",
                    metadata={
                        "recovered_by_replay": summary["recovered"],
                        "replay_id": summary["replay_id"],
                        "clean_by_day": dg.MetadataValue.json(summary["clean_by_day"]),
                    },
                )
            )
    except Exception as exc:  # the replay is committed: telling Dagster is a courtesy, never its failure
        click.echo(f"could not tell the Dagster instance at {home}: {exc}", err=True)
        return False
    return True


@rejects.command("discard")
@click.option("--reason", required=True, help="The reason code whose open rejects are given up.")
@click.option("--note", required=True, help="Why they are given up (kept with each record).")
@_SINCE
def rejects_discard(reason: str, note: str, since: datetime | None) -> None:
    """Give up the open rejects of a reason, with a note."""
    from cdr_platform.lib.mediation import reject_store as store

    _, conn, tables = _reject_store()
    with conn:
        try:
            count = store.discard(conn, tables, reason=reason, note=note, since=since.date() if since else None)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"{count:,} {reason} rejects discarded")


@cdr.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of the PNGs (default: docs/screenshots/).",
)
def screenshots(out: Path | None) -> None:
    """The asset graph (from a `dagster dev` of its own) and the dashboard (from the marts) as PNGs."""
    from cdr_platform.utils import screenshots as shots
    from cdr_platform.utils.headless_browser import BrowserError

    try:
        for path in shots.take_all(out or shots.DEFAULT_OUT):
            click.echo(path)
    except (BrowserError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None


# -- reference data: the operator's own files -------------------------------------------------

# lib.reference.operator_files.DATASETS (a unit test keeps them equal; not imported at start-up)
_REFERENCE_DATASETS = ("numbering-plan", "cells", "subscribers")
_REFERENCE_DATASET = click.argument("dataset", type=click.Choice(_REFERENCE_DATASETS))


@cdr.command()
@click.option("--source", required=True, help="The network element the files come from (declared by its first file).")
@click.option(
    "--format",
    "format_name",
    type=click.Choice(["3gpp-ber", "asterisk-csv", "kamailio-acc", "cdr-json"]),
    default=None,
    help="The files' format (default: the source's declared one; a new source's is detected from the file).",
)
@click.option("--cell-id", default=None, help="A new PBX or SIP source: the cell (CGI) its CDRs take.")
@click.option("--technology", default=None, help="A new PBX or SIP source: its CDRs' technology (2G-5G).")
@click.option("--timezone", "zone", default="UTC", show_default=True, help="A new source: the zone of its local times.")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def collect(
    source: str, format_name: str | None, cell_id: str | None, technology: str | None, zone: str, files: tuple[Path]
) -> None:
    """Collect CDR FILES of a network element: check each as a file, publish its records to raw-cdrs.

    One line per file: collected (records read, published, not charged), already collected (the same
    bytes: nothing changes), duplicate (its sequence number came in another file) or quarantined (not
    readable in its format). A copy goes to <CDR_LANDING_DIR>/<source>/archive/ or quarantine/; the
    files given stay where they are. Exits 1 if a file was refused."""
    from cdr_platform.lib.collection.collector import CollectionError, SourceDeclaration, collect_file
    from cdr_platform.lib.collection.ledger import create_tables, tables_for
    from cdr_platform.lib.ingest.producers import make_producer
    from cdr_platform.lib.kafka_io import ensure_cdr_topics
    from cdr_platform.lib.settings import load_settings
    from cdr_platform.lib.warehouse import connect

    settings = load_settings()
    tables = tables_for(settings)
    declaration = SourceDeclaration(cell_id=cell_id, technology=technology, timezone=zone)
    conn = connect(settings.warehouse)
    producer = make_producer("kafka-python", settings.kafka)
    refused = partials = 0
    try:
        create_tables(conn, tables)
        conn.commit()
        ensure_cdr_topics(settings.kafka)  # the partials topic included
        for path in files:
            outcome = collect_file(
                path,
                source_name=source,
                format_name=format_name,
                conn=conn,
                tables=tables,
                publisher=producer,
                topic=settings.kafka.raw_cdrs_topic,
                source_folder=settings.landing_dir / source,
                move=False,
                declaration=declaration,
                duplicate_tolerance_s=settings.duplicate_content_tolerance_s,
                partials_topic=settings.kafka.partials_topic,
            )
            refused += outcome.refused
            partials += outcome.partials
            click.echo(outcome.summary())
    except CollectionError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        producer.close()
        conn.close()
    if partials:
        topic = settings.kafka.partials_topic
        click.echo(f"{partials:,} partial records wait in {topic}: `cdr stitch` makes their CDRs")
    if refused:
        sys.exit(1)


@cdr.command()
def stitch() -> None:
    """Stitch the partial records waiting in CDR_PARTIALS_TOPIC: one CDR per chain to raw-cdrs (bounded run).

    A chain is emitted when its last part has come and none is missing, or flagged incomplete once
    CDR_PARTIAL_TIMEOUT_S of the records' own time has passed its latest part. Ends with a summary line."""
    import json

    from cdr_platform.lib.collection.stitching import SUMMARY_PREFIX, run
    from cdr_platform.lib.ingest.producers import make_producer
    from cdr_platform.lib.settings import load_settings

    _configure_logging()
    settings = load_settings()
    summary = run(settings, lambda: make_producer("kafka-python", settings.kafka))
    click.echo(summary.line())
    click.echo(SUMMARY_PREFIX + json.dumps(vars(summary)))


@cdr.group()
def collection() -> None:
    """The collection ledger: the network elements' files, as collected."""


@collection.command("status")
@click.option("--source", default=None, help="One source only.")
@click.option("--limit", type=int, default=20, show_default=True, help="Files listed, newest first.")
def collection_status(source: str | None, limit: int) -> None:
    """The sources, their latest files and any gap in their file sequence numbers (exit 1 on a gap)."""
    from cdr_platform.lib.collection.ledger import create_tables, list_sources, recent_files, sequence_gaps, tables_for
    from cdr_platform.lib.settings import load_settings
    from cdr_platform.lib.warehouse import connect

    settings = load_settings()
    tables = tables_for(settings)
    with connect(settings.warehouse) as conn:
        create_tables(conn, tables)
        sources = [vars(s) for s in list_sources(conn, tables) if source in (None, s.name)]
        files = recent_files(conn, tables, limit, source)
        gaps = sequence_gaps(conn, tables, source)
    click.echo("sources:\n" + _table(sources))
    click.echo("\nlatest files:\n" + _table(files))
    click.echo("\nsequence gaps: " + ("none" if not gaps else "\n" + "\n".join(g.describe() for g in gaps)))
    if gaps:
        sys.exit(1)


@cdr.group()
def reference() -> None:
    """The operator's reference data: numbering plan, cells and subscribers loaded from files as versions."""


def _reference_warehouse():
    """(settings, a connection to the configured warehouse, its dialect); exit 1 if it is unreachable."""
    from cdr_platform.lib.settings import load_settings
    from cdr_platform.lib.warehouse import connect
    from cdr_platform.lib.warehouse.dialects import DIALECTS

    settings = load_settings()
    try:
        return settings, connect(settings.warehouse), DIALECTS[settings.warehouse.kind]
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None


@reference.command("load")
@_REFERENCE_DATASET
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def reference_load(dataset: str, file: Path) -> None:
    """Load FILE as the next version of DATASET, in one transaction; a file with a bad row is refused whole.

    Prints the version loaded, or "unchanged" when FILE is the current version byte for byte; a refused
    file prints its errors (file:line: reason) and exits 1, and the current version stays."""
    from cdr_platform.lib.reference.loads import ReferenceLoadError, load
    from cdr_platform.lib.reference.operator_files import MAX_LISTED_ERRORS, ReferenceFileError
    from cdr_platform.lib.tariff_clock import TariffClock

    settings, conn, dialect = _reference_warehouse()
    day = TariffClock(settings.tariff_timezone).local_date(datetime.now(UTC))  # the operator's today
    try:
        with conn:
            result = load(
                conn, dataset, file.read_bytes(), str(file), source="cdr reference load", day=day, dialect=dialect
            )
    except ReferenceFileError as exc:
        for error in exc.errors[:MAX_LISTED_ERRORS]:
            click.echo(str(error), err=True)
        if len(exc.errors) > MAX_LISTED_ERRORS:
            click.echo(f"... and {len(exc.errors) - MAX_LISTED_ERRORS} more", err=True)
        click.echo(f"{dataset}: {file} refused ({len(exc.errors)} error(s)), nothing loaded", err=True)
        sys.exit(1)
    except ReferenceLoadError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(result.summary())


@reference.command("versions")
@click.option("--dataset", type=click.Choice(_REFERENCE_DATASETS), default=None, help="One dataset only.")
def reference_versions(dataset: str | None) -> None:
    """List the accepted loads of the reference data, oldest first; `*` marks each dataset's current version."""
    from cdr_platform.lib.reference.loads import history

    _, conn, dialect = _reference_warehouse()
    with conn:
        loads = history(conn, dataset, dialect)
    if not loads:
        click.echo("no reference data loaded yet")
        return
    current = {r.dataset: r.version for r in loads}  # oldest first: the last of each dataset wins
    header = f"  {'dataset':<15} {'version':>7} {'rows':>9}  {'sha256':<12}  {'loaded at (UTC)':<19}"
    click.echo(f"{header}  source (by), file")
    for r in loads:
        mark = "*" if current[r.dataset] == r.version else " "
        click.echo(
            f"{mark} {r.dataset:<15} {r.version:>7} {r.row_count:>9,}  {r.sha256[:12]:<12}  "
            f"{r.loaded_at:%Y-%m-%d %H:%M:%S}  {r.source} ({r.loaded_by}), {r.file_name}"
        )


@reference.command("export")
@_REFERENCE_DATASET
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--count", type=int, default=300, show_default=True, help="Subscribers: how many to generate.")
@click.option("--seed", type=int, default=2026, show_default=True, help="Subscribers: the generator's seed.")
def reference_export(dataset: str, file: Path, count: int, seed: int) -> None:
    """Write the generated data of DATASET to FILE in the documented format: an example to start from."""
    from cdr_platform.lib.reference.operator_files import generated_csv

    data = generated_csv(dataset, count, seed)
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_bytes(data)
    rows = data.count(b"\n") - 1  # one line per row after the header
    click.echo(f"{dataset}: {rows:,} rows written to {file}")


# -- billing cycles: closing a month -----------------------------------------------------------


@cdr.group()
def billing() -> None:
    """Billing cycles: close a month (issue its documents under gapless numbers) and reconcile."""


@billing.command("bill")
@click.option("--month", required=True, type=click.DateTime(["%Y-%m"]), help="The billing month to bill (YYYY-MM).")
def billing_bill(month: datetime) -> None:
    """Bill MONTH now: the bill_cdrs job (dbt's billing models of the month, their tests, the pending
    adjustments of closed months), run in the Dagster instance of DAGSTER_HOME (default: .dagster_home),
    as the automation sensor would run it. Exit 1 if the run or a check fails."""
    import dagster as dg

    from cdr_platform.definitions import defs
    from cdr_platform.lib.settings import set_process_default, work_dir

    home = Path(set_process_default("DAGSTER_HOME", str(work_dir() / ".dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    partition = f"{month:%Y-%m}-01"
    quiet = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}  # the run's log is in the UI
    with dg.DagsterInstance.get() as instance:
        result = defs.resolve_job_def("bill_cdrs").execute_in_process(
            instance=instance, partition_key=partition, raise_on_error=False, run_config=quiet
        )
    checks = result.get_asset_check_evaluations()
    failed = sorted(c.check_name for c in checks if not c.passed)
    click.echo(
        f"billed {month:%Y-%m}: run {result.run_id} {'SUCCESS' if result.success else 'FAILURE'}; "
        f"checks: {len(checks) - len(failed)} passed, {len(failed)} failed{': ' + ', '.join(failed) if failed else ''}"
    )
    for event in result.get_step_failure_events():
        click.echo(f"step {event.step_key} failed: {event.step_failure_data.error.message.strip()[:500]}", err=True)
    if not result.success or failed:
        sys.exit(1)


@billing.command("close")
@click.option("--month", required=True, type=click.DateTime(["%Y-%m"]), help="The billing month to close (YYYY-MM).")
@click.option(
    "--issue-date",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="The documents' issue date (default: today in CDR_TARIFF_TIMEZONE); its year picks the number series.",
)
@click.option("--documents/--no-documents", default=True, show_default=True, help="Render the issued PDFs.")
def billing_close(month: datetime, issue_date: datetime | None, documents: bool) -> None:
    """Close MONTH: issue its bills and the pending adjustments of earlier closed months, in one transaction.

    Closing a closed month again issues nothing (and re-renders a missing PDF). A refused close (an
    earlier month still open, bills older than the rating, out-of-date adjustments) issues nothing and
    says what to do first; exit 1."""
    from cdr_platform.lib.billing.bills import month_folder
    from cdr_platform.lib.billing.cycles import (
        CloseRefused,
        billing_lock,
        close_month,
        issued_documents,
        write_issued_documents,
    )
    from cdr_platform.lib.billing.documents import issuer
    from cdr_platform.lib.rating.store import RatingTables
    from cdr_platform.lib.tariff_clock import TariffClock

    _configure_logging()
    settings, conn, dialect = _reference_warehouse()
    first = date(month.year, month.month, 1)
    today = TariffClock(settings.tariff_timezone).local_date(datetime.now(UTC))
    with conn:
        # the billing lock, then the month's rating lock: no billing build, no day of the month swapped in
        month_lock = RatingTables.for_settings(settings).month_lock_name(first)
        with billing_lock(conn, dialect, settings.billing_schema, month_lock):
            try:
                result = close_month(
                    conn,
                    dialect=dialect,
                    billing_schema=settings.billing_schema,
                    rating_table=f"{settings.rating_schema}.rating_cdrs",
                    month=first,
                    issue_date=issue_date.date() if issue_date else today,
                    closed_by=f"cdr billing close ({_account()})",
                )
            except CloseRefused as exc:
                _fail(f"{first:%Y-%m} not closed: {exc}")
        issued = (
            issued_documents(
                conn,
                settings.billing_schema,
                first,
                issuer(settings.invoice_issuer_name, settings.invoice_issuer_address),
            )
            if documents
            else []
        )
    click.echo(result.summary())
    if documents:
        files = write_issued_documents(issued, month_folder(settings.data_dir, first))
        click.echo(f"documents: {len(files.written)} written, {len(files.kept)} already there, in {files.folder}")
    if not result.already_closed:
        _report_close_to_dagster(result)


def _report_close_to_dagster(result) -> bool:
    """A close by hand tells the Dagster instance (DAGSTER_HOME), as the close job does: a
    materialization of the month's billing/issued_invoices, which the marts sensor follows
    (fct_issued_documents lists the documents)."""
    from cdr_platform.lib.settings import setting

    home = setting("DAGSTER_HOME")
    if not home or not home.is_dir():
        return False
    import dagster as dg

    try:
        with dg.DagsterInstance.get() as instance:
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    asset_keys.ISSUED_INVOICES,
                    partition=result.month.isoformat(),
                    description=f"cdr billing close: {result.summary()}"[:500],
                    metadata={"documents": sum(result.documents.values()), "issued total": str(result.issued_total)},
                )
            )
    except Exception as exc:  # the close is committed: telling Dagster is a courtesy, never its failure
        click.echo(f"could not tell the Dagster instance at {home}: {exc}", err=True)
        return False
    return True


def _account() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no such user in a container's passwd
        return "unknown"


@billing.command("reconcile")
def billing_reconcile() -> None:
    """Per month: valued (billing_cdrs now) = issued + adjustments issued since + pending + open, to the cent.

    Exit 1 when a month does not reconcile."""
    from cdr_platform.lib.billing.cycles import reconcile

    settings, conn, _ = _reference_warehouse()
    with conn:
        months = reconcile(conn, settings.billing_schema)
    rows = [
        {
            "month": f"{m.month:%Y-%m}",
            "status": "closed" if m.closed else "open",
            "valued": f"{m.valued:,.2f}",
            "issued": f"{m.issued:,.2f}",
            "adjusted since": f"{m.adjusted:,.2f}",
            "pending": f"{m.pending:,.2f}",
            "open": f"{m.open:,.2f}",
            "difference": f"{m.difference:,.2f}",
        }
        for m in months
    ]
    click.echo(_table(rows) if rows else "no bills yet")
    if any(m.difference for m in months):
        _fail("billing does not reconcile: " + ", ".join(f"{m.month:%Y-%m}" for m in months if m.difference))


@cdr.command("settings")
@click.option(
    "--check",
    is_flag=True,
    help="Load the settings from the environment; exit 1 naming an invalid one (CDR_ENV=prod: or an unsafe one).",
)
def settings_command(check: bool) -> None:
    """Every setting (environment variable, default, type, meaning) as the README's Markdown table."""
    from cdr_platform.lib.settings import SettingError, load_settings, settings_table

    if check:
        try:
            load_settings()
        except SettingError as exc:
            _fail(str(exc))
        _refuse_unsafe_production()
        click.echo("settings: all valid")
        return
    click.echo(settings_table())


def main() -> None:
    restore_default_interrupts()  # started in the background, it must still stop on SIGTERM
    from cdr_platform.lib.settings import export_file_secrets

    export_file_secrets()  # secrets from files, for Dagster's EnvVar and every child process
    cdr(prog_name="cdr")


if __name__ == "__main__":
    main()
