-- The reject store as the marts read it: each reject's batch, status and, once a replay recovered
-- it, the record id it was stored under. Duplicates are kept there too (status 'duplicate').
select
    query_id,
    batch_id,
    status,
    reasons,
    recovered_record_id,
    rejected_day
from {{ source('mediation', 'rejects') }}
