-- Every rated CDR with its billing month: the month of its rating day (a local day,
-- CDR_TARIFF_TIMEZONE). A national call is an outgoing call to an on-net, off-net or fixed
-- number: what included minutes cover.
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
    cost,
    case
        when record_type = 'voice' and direction = 'outgoing'
            and destination_class in ('on_net', 'off_net', 'fixed') then 1
        else 0
    end as is_national_call
from {{ ref('stg_rating__rated_cdrs') }}
