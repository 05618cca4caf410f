-- Rated CDRs with what billing and the marts read of the clean record: the rating job carries
-- it on the row, so nothing here joins back to clean_cdrs. A data session has no destination
-- class (null); the marts show it as 'none'. query_id and batch_id: the mediation batch that
-- committed its clean record.
select
    record_id,
    rating_day,
    start_time,
    record_type,
    served_msisdn,
    served_operator_id,
    direction,
    destination_class,
    technology,
    duration_s,
    data_volume_bytes,
    roaming,
    usage_amount,
    usage_unit,
    category,
    destination_id,
    cost,
    currency,
    query_id,
    batch_id
from {{ source('rating', 'rating_cdrs') }}
