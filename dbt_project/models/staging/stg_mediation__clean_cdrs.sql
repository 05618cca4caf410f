-- Ephemeral models are injected into their readers as CTEs, and SQL Server allows no WITH inside
-- a CTE: so staging and intermediate models are single selects, never `with`.
select
    record_id,
    record_type,
    served_msisdn,
    served_operator_id,
    other_msisdn,
    coalesce(destination_class, 'none') as destination_class,
    direction,
    start_time,
    duration_s,
    data_volume_bytes,
    technology,
    query_id,
    batch_id
from {{ source('mediation', 'clean_cdrs') }}
