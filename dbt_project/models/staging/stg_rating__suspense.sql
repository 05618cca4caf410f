select
    record_id,
    rating_day,
    record_type,
    served_msisdn,
    reason
from {{ source('rating', 'rating_suspense') }}
