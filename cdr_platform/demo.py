"""`cdr demo` (`make demo`): the main job on the local stack, quietly, then a summary.

The job runs in-process against DAGSTER_HOME (default .dagster_home/), so `make dev` shows its
runs in the UI. The terminal gets one line per stage as it starts and finishes, a progress bar
for the long ones (producing, mediating, rating) and the summary; everything else - Dagster's
event log, Kafka's and Spark's output - goes to a log file under .stack/logs/ that the demo names.

The demo produces synthetic CDRs: with CDR_ENV=prod it refuses to run (one line, exit code 1),
before it touches anything; the production code location has no `cdr_pipeline` anyway.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

from cdr_platform.lib import asset_keys
from cdr_platform.lib.asset_keys import user_string
from cdr_platform.lib.settings import load_settings, set_process_default, work_dir
from cdr_platform.utils.environment_helpers import synthetic_traffic_refusal

# what the stages log as they go, read back from the run's event log
_PRODUCED = re.compile(r"produced ([\d,]+)/([\d,]+) CDRs")
_MEDIATED = re.compile(r"batch \d+: ([\d,]+) in,")
_QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


class Terminal:
    """One line per event; a bar redrawn in place on a terminal, printed at its ends elsewhere."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._bar: str | None = None

    def line(self, text: str) -> None:
        self._end_bar()
        print(text, file=self.stream, flush=True)

    def bar(self, label: str, done: int, total: int) -> None:
        share = min(done / total, 1.0) if total else 1.0
        text = f"    {label:20} [{'#' * round(30 * share):30}] {share:4.0%}  {done:,}/{total:,}"
        if self.tty:
            print("\r" + text, end="", file=self.stream, flush=True)
            self._bar = text
        elif share >= 1.0 and self._bar != text:
            print(text, file=self.stream, flush=True)
            self._bar = text

    def _end_bar(self) -> None:
        if self.tty and self._bar is not None:
            print(file=self.stream, flush=True)
        self._bar = None


@contextlib.contextmanager
def _output_to(log_path: Path):
    """Send this process's stdout and stderr (and its children's: Spark, dbt) to the log file;
    yield a stream to the real terminal for the demo's own lines."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    terminal = os.fdopen(os.dup(1), "w", buffering=1)
    with log_path.open("ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield terminal
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved_out, 1)
            os.dup2(saved_err, 2)
            os.close(saved_out)
            os.close(saved_err)
            terminal.close()


def _run_with_progress(
    job,
    instance,
    term: Terminal,
    log_file,
    *,
    ops: dict | None = None,
    expected: int = 0,
    partition_key: str | None = None,
    label_width: int = 20,
):
    """Run `job` in a thread and follow its event log: stage lines, progress bars, the log file.
    `expected`: the messages mediation should consume, for its bar."""
    run_id = str(uuid.uuid4())
    outcome: dict = {}
    run_config = {**_QUIET_CONSOLE, **({"ops": ops} if ops else {})}

    def target() -> None:
        try:
            outcome["result"] = job.execute_in_process(
                instance=instance,
                run_id=run_id,
                raise_on_error=False,
                run_config=run_config,
                partition_key=partition_key,
            )
        except BaseException as exc:  # reported by the caller
            outcome["error"] = exc

    runner = threading.Thread(target=target, name=f"run-{job.name}", daemon=True)
    runner.start()
    cursor, started, mediated = None, {}, 0
    # asset checks run as steps of their own: the summary counts them, the stage lines skip them
    check_suffixes = tuple(f"_{key.name}" for key in job.asset_layer.asset_graph.asset_check_keys)
    while True:
        alive = runner.is_alive()
        connection = instance.get_records_for_run(run_id, cursor=cursor, limit=1000)
        cursor = connection.cursor
        for record in connection.records:
            entry = record.event_log_entry
            event = entry.dagster_event
            message = entry.user_message or (event.message if event else "") or ""
            stamp = datetime.fromtimestamp(entry.timestamp).isoformat(sep=" ", timespec="seconds")
            print(
                f"{stamp} {entry.level if isinstance(entry.level, str) else ''} {entry.step_key or ''} {message}",
                file=log_file,
                flush=True,
            )
            step = entry.step_key or ""
            if step.endswith(check_suffixes):
                continue
            if event is not None and event.event_type_value == "STEP_START":
                started[step] = time.perf_counter()
                term.line(f"  > {step}")
            elif event is not None and event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and step in started:
                ok = event.event_type_value == "STEP_SUCCESS"
                seconds = time.perf_counter() - started.pop(step)
                term.line(f"  {'ok' if ok else 'FAILED'} {step:{label_width}} {seconds:6.1f} s")
            elif match := _PRODUCED.search(message):
                term.bar("producing", int(match[1].replace(",", "")), int(match[2].replace(",", "")))
            elif match := _MEDIATED.search(message):
                mediated += int(match[1].replace(",", ""))
                term.bar("mediating", mediated, max(mediated, expected))
        if not alive and not connection.has_more:
            break
        if not connection.has_more:
            time.sleep(0.3)
    runner.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _summarise(result, term: Terminal) -> None:
    plain = []  # assets with nothing more to say than "materialized" (seeds, ledger tables): one line
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        meta = {k: v.value for k, v in mat.metadata.items()}
        key = mat.asset_key.to_user_string()
        if "records" in meta:
            summary = (
                f"{meta['records']:,} CDRs to topic {meta['topic']} ({meta['valid_records']:,} valid, "
                f"{meta['injected_errors']:,} injected errors) at {meta['records_per_second']:,.0f}/s"
            )
        elif key == user_string(asset_keys.CLEAN_CDRS):
            summary = (
                f"{meta['rows_in']:,} consumed from raw-cdrs in {meta['batches']} batch(es): {meta['clean']:,} clean "
                f"into {meta['table']}, {meta['rejected']:,} rejected, {meta['duplicates']:,} duplicates, "
                f"at {meta['rows_per_second']:,.0f} rows/s"
            )
        elif key == user_string(asset_keys.ERROR_CDRS):
            summary = f"{meta['rejected'] + meta['duplicates']:,} rejects and duplicates published to {meta['topic']}"
        elif "dagster/row_count" in meta and "table" in meta:
            summary = f"{meta['dagster/row_count']:,} rows in {meta['table']}"
        else:
            plain.append(key)
            continue
        term.line(f"  {key:26} {summary}")
    if plain:
        term.line(f"  {'also materialized':26} {', '.join(sorted(plain))}")


def _rating_lines(run, day: str, term: Terminal) -> None:
    for event in run.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        if mat.asset_key.to_user_string() != user_string(asset_keys.RATING_CDRS):
            continue
        meta = {k: v.value for k, v in mat.metadata.items()}
        term.line(
            f"  {'rating_cdrs ' + day:26} {meta['input']:,} clean CDRs: {meta['rated']:,} rated, "
            f"{meta['suspended']:,} in suspense; revenue {meta['revenue_total']:,.2f} MAD"
        )
        for line in meta["revenue_by_type"].splitlines()[2:]:
            _, record_type, amount, _ = line.split("|")
            term.line(f"  {'':26}   {record_type.strip():6} {float(amount):>14,.2f} MAD")


def _billing_lines(settings, months: list[str], term: Terminal) -> None:
    """Per billed month: bills, invoices, the amount before tax, VAT and the total."""
    from cdr_platform.lib.warehouse import connect

    with connect(settings.warehouse) as conn:
        for month in months:
            bills, invoices, before_tax, vat, total = conn.execute(
                "select count(*), sum(case when document_type = 'invoice' then 1 else 0 end),"
                " sum(amount_before_tax), sum(vat_amount), sum(total_amount)"
                f" from {settings.billing_schema}.billing_cdrs where billing_month = %(month)s",
                {"month": month},
            ).fetchone()
            term.line(
                f"  {'billing_cdrs ' + month[:7]:26} {bills:,} bills ({invoices or 0:,} invoices): "
                f"{before_tax or 0:,.2f} MAD before tax + {vat or 0:,.2f} VAT = {total or 0:,.2f} MAD"
            )


def run_demo(*, count: int, seed: int, producer: str) -> int:
    refusal = synthetic_traffic_refusal("cdr demo")
    if refusal:
        print(refusal, file=sys.stderr)
        return 1
    settings = load_settings()
    dagster_home = Path(set_process_default("DAGSTER_HOME", str(work_dir() / ".dagster_home")))
    dagster_home.mkdir(parents=True, exist_ok=True)
    log_path = settings.stack.directory / "logs" / f"demo-{datetime.now():%Y%m%d-%H%M%S}.log"
    with _output_to(log_path) as stream, log_path.open("a") as log_file:
        term = Terminal(stream)
        term.line(f"cdr demo: {count:,} CDRs (seed {seed}) through the main job; logs: {log_path}")
        import logging

        logging.basicConfig(
            level=logging.INFO,
            stream=sys.stderr,
            force=True,  # fd 2: the log file
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        import dagster as dg

        from cdr_platform.definitions import defs

        ops = {asset_keys.RAW_CDRS[-1]: {"config": {"count": count, "seed": seed, "producer": producer}}}
        with dg.DagsterInstance.get() as instance:
            term.line("stage cdr_pipeline: reference data, tariff seeds, CDRs into raw-cdrs, mediation")
            result = _run_with_progress(
                defs.resolve_job_def("cdr_pipeline"), instance, term, log_file, ops=ops, expected=count
            )
            runs = [result]
            rated, months = [], []
            if result.success:
                days = _days_to_rate(settings)
                term.line(f"stage rate_cdrs: {len(days)} day(s) with clean CDRs")
                for i, day in enumerate(days):
                    term.bar("rating days", i, len(days))
                    run = _run_with_progress(
                        defs.resolve_job_def("rate_cdrs"), instance, term, log_file, partition_key=day
                    )
                    rated.append((day, run))
                    runs.append(run)
                term.bar("rating days", len(days), len(days))
                months = sorted({day[:7] + "-01" for day in days})
            if all(run.success for run in runs):
                term.line(f"stage bill_cdrs: {len(months)} billing month(s) (dbt)")
                for month in months:
                    runs.append(
                        _run_with_progress(
                            defs.resolve_job_def("bill_cdrs"), instance, term, log_file, partition_key=month
                        )
                    )
            documents = []
            if all(run.success for run in runs):
                term.line(f"stage render_bill_documents: {len(months)} month(s) of bills as PDF documents")
                for month in months:
                    run = _run_with_progress(
                        defs.resolve_job_def("render_bill_documents"), instance, term, log_file, partition_key=month
                    )
                    runs.append(run)
                    documents += [
                        event.event_specific_data.materialization.metadata
                        for event in run.get_asset_materialization_events()
                    ]
            if all(run.success for run in runs):
                term.line("stage build_marts: the marts Power BI reads (dbt)")
                runs.append(_run_with_progress(defs.resolve_job_def("build_marts"), instance, term, log_file))
            dashboard = None
            if all(run.success for run in runs):
                term.line("stage publish_bi: the local dashboard, the Power BI model and report")
                published = _run_with_progress(defs.resolve_job_def("publish_bi"), instance, term, log_file)
                runs.append(published)
                for event in published.get_asset_materialization_events():
                    metadata = event.event_specific_data.materialization.metadata
                    if "path" in metadata:
                        dashboard = metadata["path"].value

            term.line("")
            term.line(f"cdr_pipeline run {result.run_id}: {'SUCCESS' if result.success else 'FAILURE'}")
            _summarise(result, term)
            for day, run in rated:
                _rating_lines(run, day, term)
            if months and all(run.success for run in runs):
                _billing_lines(settings, months, term)
            checks = [check for run in runs for check in run.get_asset_check_evaluations()]
            passed = sum(c.passed for c in checks)
            term.line(f"checks: {passed} passed, {len(checks) - passed} failed")
            for check in checks:
                if not check.passed:
                    term.line(f"  check {check.asset_key.to_user_string()}/{check.check_name}: FAILED")
            failed = [run for run in runs if not run.success]
            for run in failed:
                for event in run.get_step_failure_events():
                    term.line(f"step {event.step_key} failed: {event.step_failure_data.error.message.strip()}")
            for metadata in documents:
                term.line(
                    f"bill documents (provisional PDFs): {metadata['documents'].value:,} in {metadata['folder'].value}"
                )
            if dashboard:
                term.line(f"dashboard: {dashboard} (open it in a browser; it needs no network)")
            term.line(f"logs: {log_path}; the runs are in the Dagster UI: make dev")
            return 0 if not failed else 1


def _days_to_rate(settings) -> list[str]:
    """The local days (the operator's time zone) that hold clean CDRs."""
    from cdr_platform.lib.mediation.store import tables_for
    from cdr_platform.lib.rating.job import days_with_clean_cdrs
    from cdr_platform.lib.tariff_clock import TariffClock
    from cdr_platform.lib.warehouse import connect

    with connect(settings.warehouse) as conn:
        days = days_with_clean_cdrs(conn, tables_for(settings).clean, TariffClock(settings.tariff_timezone))
    return [d.isoformat() for d in days]
