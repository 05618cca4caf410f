"""BI: the local dashboard, the Power BI semantic model and its report, at the end of the lineage.

Their dependencies are read, not typed: the dashboard's from the tables its SQL names, the
semantic model's from the M partitions of its TMDL (each imports one mart); the report is bound
to the semantic model by its definition.pbir (which its check verifies). So the graph runs from
raw-cdrs to the report, and a table added to the model shows up in the lineage by itself.

None of them is refreshed while the latest evaluation of a blocking check upstream (mediation's
balance, a day's rating coverage, a month's reconciliation) has failed: the run fails naming it.
"""

import dagster as dg

from cdr_platform.defs.blocking_checks import stop_if_upstream_checks_failed
from cdr_platform.defs.resources import FilesResource, PowerBIResource, WarehouseResource
from cdr_platform.lib import asset_keys
from cdr_platform.lib.bi import dashboard
from cdr_platform.lib.bi.model_checks import best_practice_violations, unresolved_references
from cdr_platform.lib.bi.pbir import report_problems
from cdr_platform.lib.bi.powerbi_model import load_semantic_model, report_dir
from cdr_platform.lib.markdown import markdown_table
from cdr_platform.utils.dagster_instance import STAGE_TAG

GROUP = "bi"
DASHBOARD_KEY = dg.AssetKey(asset_keys.DASHBOARD)
SEMANTIC_MODEL_KEY = dg.AssetKey(asset_keys.SEMANTIC_MODEL)
REPORT_KEY = dg.AssetKey(asset_keys.POWERBI_REPORT)
# rebuilt when the marts change, once they all exist
ON_CHANGE = dg.AutomationCondition.eager()


def semantic_model_deps() -> list[dg.AssetKey]:
    """The mart of every table the semantic model imports (its M partitions)."""
    model = load_semantic_model()
    return sorted({dg.AssetKey(asset_keys.mart(t.source[1])) for t in model.tables if t.source}, key=str)


@dg.asset(
    key=DASHBOARD_KEY,
    deps=[dg.AssetKey(asset_keys.mart(table)) for table in sorted(dashboard.tables_read())],
    group_name=GROUP,
    kinds={"html", "plotly"},
    automation_condition=ON_CHANGE,
    description="One self-contained HTML file of the marts (KPI cards = the Power BI measures by their SQL "
    "twins; revenue by day and operator, top customers, call distribution, average call duration, rejections, "
    "revenue assurance). Opens from disk with no network.",
)
def local_dashboard(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, files: FilesResource
) -> dg.MaterializeResult:
    stop_if_upstream_checks_failed(context)
    with warehouse.connect() as conn:
        data = dashboard.collect(conn, warehouse.marts_schema)
    path = dashboard.render(data, files.path("dashboard", "cdr_dashboard.html"))
    cards = [{"measure": name, "value": "(blank)" if v is None else str(v)} for name, v in data.kpis.items()]
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "kpis": dg.MetadataValue.md(markdown_table(cards)),
            "charts": len(data.charts),
            "size_kb": round(path.stat().st_size / 1024),
        }
    )


@dg.asset(
    key=SEMANTIC_MODEL_KEY,
    deps=semantic_model_deps(),
    group_name=GROUP,
    kinds={"powerbi", "semantic_model"},
    automation_condition=ON_CHANGE,
    description="The Power BI semantic model (powerbi/CdrPlatform.SemanticModel, TMDL): read and checked offline "
    "(references, best-practice rules); refreshed in the Power BI service when a workspace is configured.",
)
def semantic_model(context: dg.AssetExecutionContext, powerbi: PowerBIResource) -> dg.MaterializeResult:
    stop_if_upstream_checks_failed(context)  # no refresh from data a blocking check failed on
    model = load_semantic_model()
    problems = unresolved_references(model) + best_practice_violations(model)
    if problems:
        raise dg.Failure("the semantic model does not pass its offline checks", metadata={"problems": problems})
    refresh = powerbi.refresh_semantic_model(context)
    return dg.MaterializeResult(
        metadata={
            "tables": len(model.tables),
            "measures": dg.MetadataValue.md(
                markdown_table([{"measure": m.name, "format": m.format_string or ""} for m in model.measures])
            ),
            "roles": ", ".join(r.name for r in model.roles),
            "refresh": refresh,
        }
    )


@dg.asset(
    key=REPORT_KEY,
    deps=[SEMANTIC_MODEL_KEY],
    group_name=GROUP,
    kinds={"powerbi", "report"},
    automation_condition=ON_CHANGE,
    description="The Power BI report (powerbi/CdrPlatform.Report, PBIR): its pages and visuals, checked offline "
    "against the semantic model they are bound to.",
)
def report(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    stop_if_upstream_checks_failed(context)
    model = load_semantic_model()
    folder = report_dir()
    problems = report_problems(folder, model)
    if problems:
        raise dg.Failure("the report does not pass its offline checks", metadata={"problems": problems})
    pages = sorted(p.name for p in (folder / "definition" / "pages").iterdir() if p.is_dir())
    visuals = sum(1 for _ in (folder / "definition" / "pages").glob("*/visuals/*/visual.json"))
    return dg.MaterializeResult(metadata={"pages": ", ".join(pages), "visuals": visuals})


publish_bi_job = dg.define_asset_job(
    "publish_bi",
    selection=dg.AssetSelection.groups(GROUP),
    description="Render the local dashboard, check the Power BI model and report (refresh the published model "
    "when a workspace is configured).",
    tags={STAGE_TAG: "bi"},
)
