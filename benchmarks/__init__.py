"""Benchmarks (`make bench`), each run as `python -m benchmarks.<name>`."""

from cdr_platform.lib.settings import export_file_secrets

# secrets from files (the local stack's generated passwords), for dbt, Dagster and the Spark drivers
export_file_secrets()
