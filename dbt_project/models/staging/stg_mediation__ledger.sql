select
    query_id,
    batch_id,
    rows_in,
    clean,
    rejected,
    duplicates,
    -- the operator's local date of the commit; ledgers written before it was kept: the UTC date
    coalesce(committed_day, cast(committed_at as date)) as committed_day
from {{ source('mediation', 'mediation_ledger') }}
