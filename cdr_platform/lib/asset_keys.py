"""Every asset key of the platform, declared once, as the path of names Dagster shows.

Plain tuples, so that the Spark drivers' CLI (reporting materializations through Dagster Pipes)
and the demo (reading a run's events) name the assets without importing Dagster; the definitions
in `cdr_platform.defs` pass them to Dagster, which takes a tuple of names as an asset key. The dbt
models' and seeds' keys are [prefix, name], their prefixes set per folder in dbt_project.yml.
"""

from __future__ import annotations

AssetPath = tuple[str, ...]

# collection of network elements' files, ingest and reference data
COLLECTION_FILES: AssetPath = ("collection", "collection_files")  # the ledger of collected files
RAW_CDRS: AssetPath = ("raw_cdrs",)
NUMBERING_PLAN: AssetPath = ("numbering_plan",)
CELL_CATALOGUE: AssetPath = ("cell_catalogue",)
SUBSCRIBERS: AssetPath = ("subscribers",)
SUBSCRIBER_PERIODS: AssetPath = ("subscriber_periods",)  # written by the subscribers asset's load
# mediation
CLEAN_CDRS: AssetPath = ("clean_cdrs",)
ERROR_CDRS: AssetPath = ("error_cdrs",)
MEDIATION_LEDGER: AssetPath = ("mediation_ledger",)
LEDGER_REASONS: AssetPath = ("mediation_ledger_reasons",)
REJECT_STORE: AssetPath = ("reject_store",)
# rating
RATING_CDRS: AssetPath = ("rating_cdrs",)
RATING_SUSPENSE: AssetPath = ("rating_suspense",)
RERATING_REPORT: AssetPath = ("rating", "rerating_report")  # what a re-rating changed, per subscriber
# dbt: seeds, bills and marts (prefixes as dbt_project.yml's meta.dagster.key_prefix)
TARIFFS_PREFIX = "tariffs"
BILLING_PREFIX = "billing"
MARTS_PREFIX = "marts"
BILLING_CDRS: AssetPath = (BILLING_PREFIX, "billing_cdrs")
INVOICE_LINES: AssetPath = (BILLING_PREFIX, "invoice_lines")
BILL_DOCUMENTS: AssetPath = (BILLING_PREFIX, "bill_documents")  # the bills as PDF documents
BILLING_ADJUSTMENTS: AssetPath = (BILLING_PREFIX, "billing_adjustments")  # closed months' pending differences
ISSUED_INVOICES: AssetPath = (BILLING_PREFIX, "issued_invoices")  # a closed month's documents, as issued
# BI
DASHBOARD: AssetPath = ("bi", "dashboard")
SEMANTIC_MODEL: AssetPath = ("powerbi", "semantic_model")
POWERBI_REPORT: AssetPath = ("powerbi", "report")


def tariff_seed(name: str) -> AssetPath:
    """A tariff seed's key: tariffs/<seed name>."""
    return (TARIFFS_PREFIX, name)


def mart(table: str) -> AssetPath:
    """A mart's key: marts/<table>."""
    return (MARTS_PREFIX, table)


def user_string(key: AssetPath) -> str:
    """The key as Dagster writes it ("billing/billing_cdrs"): Pipes reports and run events use it."""
    return "/".join(key)
