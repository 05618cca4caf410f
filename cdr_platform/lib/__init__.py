"""Plain Python that knows nothing of Dagster: schema, generator, Kafka and warehouse helpers."""
