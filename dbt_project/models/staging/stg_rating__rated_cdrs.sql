select
    record_id,
    rating_day,
    start_time,
    record_type,
    served_msisdn,
    usage_amount,
    usage_unit,
    category,
    destination_id,
    cost,
    currency
from {{ source('rating', 'rating_cdrs') }}
