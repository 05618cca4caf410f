import dagster as dg

from cdr_platform.definitions import defs


def test_definitions_load_with_the_expected_asset_graph():
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"numbering_plan", "cell_catalogue", "subscribers", "raw_cdrs"} <= keys
    assert dg.AssetKey("subscribers") in graph.get(dg.AssetKey("raw_cdrs")).parent_keys
    assert {dg.AssetKey("numbering_plan"), dg.AssetKey("cell_catalogue")} <= graph.get(
        dg.AssetKey("subscribers")).parent_keys
    checks = {k.name for k in graph.asset_check_keys}
    assert {"subscribers_match_numbering_plan", "raw_cdrs_offsets_account_for_every_record"} <= checks
    jobs = {j.name for j in defs.resolve_all_job_defs()}
    assert {"generate_cdrs", "cdr_pipeline"} <= jobs


def test_generate_cdrs_config_refuses_bad_settings_before_producing():
    from cdr_platform.defs.ingest.assets import GenerateCdrsConfig
    from cdr_platform.lib.generator import GeneratorConfigError

    for bad in ({"count": -5}, {"error_rate": 1.2}, {"error_classes": ["nope"]}):
        try:
            GenerateCdrsConfig(**bad).generator_config()
        except GeneratorConfigError:
            continue
        raise AssertionError(f"{bad} was accepted")
