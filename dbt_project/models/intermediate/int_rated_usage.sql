-- Every rated CDR with its billing month: the month of its rating day (a local day,
-- CDR_TARIFF_TIMEZONE).
select
    record_id,
    rating_day,
    {{ month_start('rating_day') }} as billing_month,
    start_time,
    record_type,
    served_msisdn,
    served_operator_id as operator_id,
    direction,
    destination_class,
    technology,
    duration_s,
    data_volume_bytes,
    roaming,
    cost
from {{ ref('stg_rating__rated_cdrs') }}
