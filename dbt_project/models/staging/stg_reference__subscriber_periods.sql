-- The subscribers' plan periods: valid_to is the last day in force (inclusive), null open-ended.
select
    msisdn,
    operator_id,
    segment,
    plan as plan_name,
    valid_from,
    valid_to
from {{ source('reference', 'subscriber_periods') }}
