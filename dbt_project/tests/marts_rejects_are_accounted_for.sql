{{ config(severity='warn', meta={'dagster': {'ref': {'name': 'fct_revenue_assurance_daily'}}}) }}
-- Every message a day's batches rejected stands in the reject store as open, recovered or
-- discarded: rejected = rejects_open + recovered + discarded. Rows returned are the breaks.
-- A warning, not an error: a ledger written before the reject store existed has rejects the
-- store never saw (a fresh warehouse has none).
select date_key, rejected, rejects_open, recovered, discarded
from {{ ref('fct_revenue_assurance_daily') }}
where rejected <> rejects_open + recovered + discarded
