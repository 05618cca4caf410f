"""Telecom CDR data platform: Kafka -> Spark mediation -> rating -> dbt billing -> BI."""
