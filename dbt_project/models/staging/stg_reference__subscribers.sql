select
    msisdn,
    operator_id,
    operator_name,
    segment,
    plan as plan_name,
    home_region as region
from {{ source('reference', 'subscribers') }}
