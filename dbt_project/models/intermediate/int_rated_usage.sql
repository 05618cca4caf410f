-- Every rated CDR with what billing and the marts need of its clean record, and its billing
-- month: the month of its rating day (a local day, CDR_TARIFF_TIMEZONE). A national call is an
-- outgoing call to an on-net, off-net or fixed number: what included minutes cover.
select
    rated.record_id,
    rated.rating_day,
    {{ month_start('rated.rating_day') }} as billing_month,
    rated.start_time,
    rated.record_type,
    rated.served_msisdn,
    clean.served_operator_id as operator_id,
    clean.direction,
    clean.destination_class,
    clean.technology,
    clean.duration_s,
    clean.data_volume_bytes,
    rated.cost,
    case
        when rated.record_type = 'voice' and clean.direction = 'outgoing'
            and clean.destination_class in ('on_net', 'off_net', 'fixed') then 1
        else 0
    end as is_national_call
from {{ ref('stg_rating__rated_cdrs') }} as rated
inner join {{ ref('stg_mediation__clean_cdrs') }} as clean
    on clean.record_id = rated.record_id
