"""How dbt nodes become Dagster assets: keys and groups as dagster-dbt reads them from the dbt
project (`meta.dagster.asset_key` on a source joins it to the asset that writes the table;
`meta.dagster.group` names the group), dbt tests as asset checks, and when each runs by itself.

Automation: billing months (dbt tag `billing`) carry a declarative condition, evaluated by the
automation sensor in definitions.py: they run for exactly the months whose rating days changed,
any month, not only the latest, one run of a month at a time. They do not wait for a rating run
in progress: a rating day is swapped in by one short transaction, so billing reads a day whole,
before or after; a day rated while its month bills makes the month due again. (Waiting on rating
starved billing under live traffic, where some day is nearly always being rated.) The marts are
rebuilt together by a sensor (defs/dbt/sensors.py): they are one graph, and asset-by-asset
requests would build a fact before its dimension. Rating days come from a sensor too
(defs/rating/sensors.py): which days a mediation run touched is in its metadata. Seeds run when
launched (a tariff or plan change is a decision, not an event).
"""

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings

from cdr_platform.defs.rating.assets import RATING_CDRS_KEY

BILLING_TAG = "billing"  # the dbt tag of the billing models (dbt_project.yml)
BILLING_GROUP = "billing"  # their Dagster group (meta.dagster.group)
AC = dg.AutomationCondition
# only a new rating of one of its days re-bills a month; the unpartitioned tables billing also
# reads (clean_cdrs, subscribers) change with every mediation run
BILLING_TRIGGERS = dg.AssetSelection.assets(RATING_CDRS_KEY)
# A billing model that reads another (invoice_lines reads billing_cdrs) is requested with it, in the
# same tick - not when the other was merely updated: a run stopped half-way (dagster dev killed
# mid-billing) materialized some models of the month and not the rest, and requesting each model
# as its inputs changed then re-billed them one at a time, every run testing bills against lines of
# another version. The month is billed again whole by the run's retry or the next rating.
BILLING_MONTH_CONDITION = (
    (
        AC.any_deps_updated().allow(BILLING_TRIGGERS).since_last_handled()
        | AC.any_deps_match(AC.will_be_requested()).allow(dg.AssetSelection.groups(BILLING_GROUP))
    )
    & ~AC.in_progress()
).with_label("a rating day of the month changed")


class CdrDbtTranslator(DagsterDbtTranslator):
    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        """A model's or seed's key is [meta.dagster.key_prefix, name] (dbt_project.yml sets the
        prefix per folder), not dagster-dbt's [schema, name]: the schemas are settings (a test's
        sandbox, another environment), and an asset's identity must not move with them."""
        prefix = (dbt_resource_props.get("meta") or {}).get("dagster", {}).get("key_prefix")
        if dbt_resource_props["resource_type"] in ("model", "seed") and prefix:
            return dg.AssetKey([prefix, dbt_resource_props["name"]])
        return super().get_asset_key(dbt_resource_props)

    def get_automation_condition(self, dbt_resource_props: Mapping[str, Any]) -> dg.AutomationCondition | None:
        if dbt_resource_props["resource_type"] != "model":
            return None
        if BILLING_TAG in dbt_resource_props.get("tags", []):
            return BILLING_MONTH_CONDITION
        return None  # the marts: the marts sensor


TRANSLATOR = CdrDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))
