"""Spark jobs (mediation, rating) and the session they share. Plain PySpark, no Dagster."""
