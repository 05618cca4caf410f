{{ config(meta={'dagster': {'ref': {'name': 'invoice_lines'}}}) }}
-- Revenue reconciliation, per bill line: each subscriber's usage of a type in a month is billed
-- on one line whose amount is the exact sum of its rated_cdrs costs rounded to the cent; no rated
-- usage goes unbilled and no line bills what was not rated. Rows returned are the breaks.
with rated as (

    select billing_month, msisdn, record_type, sum(cost) as rated_cost
    from (
        select {{ month_start('rating_day') }} as billing_month, served_msisdn as msisdn, record_type, cost
        from {{ source('rating', 'rating_cdrs') }}
        where 1 = 1 {{ billing_window('rating_day') }}  {#- the window's days: their partitions only #}
    ) as rated_cdrs
    group by billing_month, msisdn, record_type

),

billed as (

    select
        billing_month,
        msisdn,
        case line_type when 'usage_voice' then 'voice' when 'usage_sms' then 'sms' else 'data' end as record_type,
        amount
    from {{ ref('invoice_lines') }}
    where line_type in ('usage_voice', 'usage_sms', 'usage_data') {{ billing_window('billing_month') }}

)

select
    coalesce(rated.billing_month, billed.billing_month) as billing_month,
    coalesce(rated.msisdn, billed.msisdn) as msisdn,
    coalesce(rated.record_type, billed.record_type) as record_type,
    rated.rated_cost,
    billed.amount as billed_amount
from rated
full outer join billed
    on billed.billing_month = rated.billing_month
    and billed.msisdn = rated.msisdn
    and billed.record_type = rated.record_type
where rated.rated_cost is null
    or billed.amount is null
    or billed.amount <> {{ to_bill_amount('rated.rated_cost') }}
