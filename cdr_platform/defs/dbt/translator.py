"""How dbt nodes become Dagster assets: keys and groups as dagster-dbt reads them from the dbt
project (`meta.dagster.asset_key` on a source joins it to the asset that writes the table;
`meta.dagster.group` names the group), dbt tests as asset checks, and when each runs by itself.

Automation (declarative, evaluated by the automation sensor in definitions.py):
* billing months (dbt tag `billing`) run for exactly the months whose rating days changed, any
  month, not only the latest, and never while a day of theirs is being rated;
* the marts (every other model) rebuild when anything they read changed, once nothing they read
  is in progress;
* seeds run when launched (a tariff or plan change is a decision, not an event).
Rating days are requested by a sensor (defs/rating/sensors.py): which days a mediation run
touched is in its metadata, which no condition can read.
"""

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings

from cdr_platform.defs.rating.assets import RATING_CDRS_KEY

BILLING_TAG = "billing"  # the dbt tag of the billing models (dbt_project.yml)
BILLING_GROUP = "billing"  # their Dagster group (meta.dagster.group)
AC = dg.AutomationCondition
# only a new rating of one of its days (or a billing model it reads) re-bills a month; the
# unpartitioned tables billing also reads (clean_cdrs, subscribers) change with every mediation run
BILLING_TRIGGERS = dg.AssetSelection.assets(RATING_CDRS_KEY) | dg.AssetSelection.groups(BILLING_GROUP)
BILLING_MONTH_CONDITION = (
    AC.any_deps_updated().allow(BILLING_TRIGGERS).since_last_handled() & ~AC.any_deps_in_progress() & ~AC.in_progress()
).with_label("a rating day of the month changed")
MART_CONDITION = AC.eager().without(~AC.any_deps_missing()).with_label("what the mart reads changed")
# a mart that reads the bills (dbt meta reads_billing) waits for the first billed month: before it
# there is no billing table to read, and the mediation run that precedes it would fail it
BILLED_MART_CONDITION = (
    MART_CONDITION & AC.any_deps_match(~AC.missing()).allow(dg.AssetSelection.groups(BILLING_GROUP))
).with_label("what the mart reads changed, and a month is billed")


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
        if (dbt_resource_props.get("meta") or {}).get("reads_billing"):
            return BILLED_MART_CONDITION
        return MART_CONDITION


TRANSLATOR = CdrDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))
