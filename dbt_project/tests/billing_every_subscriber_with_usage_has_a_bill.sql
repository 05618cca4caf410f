{{ config(meta={'dagster': {'ref': {'name': 'billing_cdrs'}}}) }}
-- Every subscriber with rated usage in a month has a bill for that month.
select distinct usage.billing_month, usage.served_msisdn
from (
    select {{ month_start('rating_day') }} as billing_month, served_msisdn
    from {{ source('rating', 'rating_cdrs') }}
    where 1 = 1 {{ billing_window('rating_day') }}  {#- the window's days: their partitions only #}
) as usage
where not exists (
        select 1 from {{ ref('billing_cdrs') }} as bills
        where bills.billing_month = usage.billing_month and bills.msisdn = usage.served_msisdn
    )
