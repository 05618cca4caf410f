"""Rating: a CGRateS-compatible tariff model and a rating engine. Plain Python, no Dagster."""
