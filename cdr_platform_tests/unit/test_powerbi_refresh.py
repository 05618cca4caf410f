"""The semantic model asset: offline checks always; a refresh in the Power BI service only when a
workspace is configured. The service cannot run here: its client's one call is replaced."""

import dagster as dg
from dagster_powerbi import PowerBIWorkspace

from cdr_platform.defs.bi.assets import semantic_model
from cdr_platform.defs.resources import PowerBIResource


def _refresh_metadata(result: dg.ExecuteInProcessResult) -> str:
    (event,) = result.get_asset_materialization_events()
    return event.event_specific_data.materialization.metadata["refresh"].value


def test_without_a_workspace_the_model_is_checked_and_the_ui_says_the_refresh_is_not_configured():
    result = dg.materialize([semantic_model], resources={"powerbi": PowerBIResource()})
    assert result.success
    assert _refresh_metadata(result).startswith("refresh not configured: set CDR_POWERBI_WORKSPACE_ID")


def test_with_a_workspace_the_published_semantic_model_is_refreshed(monkeypatch):
    refreshed = []
    monkeypatch.setattr(
        PowerBIWorkspace,
        "trigger_and_poll_refresh",
        lambda self, dataset: refreshed.append((self.workspace_id, dataset)),
    )
    configured = PowerBIResource(
        workspace_id="ws-1", dataset_id="ds-1", tenant_id="t", client_id="c", client_secret="s"
    )
    result = dg.materialize([semantic_model], resources={"powerbi": configured})
    assert result.success and refreshed == [("ws-1", "ds-1")]
    assert _refresh_metadata(result) == "refreshed semantic model ds-1 in workspace ws-1"


def test_a_partly_configured_workspace_is_not_configured():
    assert not PowerBIResource(workspace_id="ws-1", dataset_id="ds-1").configured
