select
    query_id,
    batch_id,
    reason,
    records
from {{ source('mediation', 'mediation_ledger_reasons') }}
