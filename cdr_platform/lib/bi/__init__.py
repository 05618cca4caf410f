"""The Power BI project as code: the semantic model read as data, its checks, its SQL twins.

Plain Python (no Dagster): the tests read powerbi/ with it, and so can an asset check later.
"""
