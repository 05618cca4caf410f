{{ config(meta={'dagster': {'ref': {'name': 'invoice_lines'}}}) }}
-- Revenue reconciliation, per bill line: each subscriber's usage of a type in a month, on each
-- document (the plan in force on the CDR's rating day: an invoice under postpaid or business, a
-- statement under prepaid or no period), is billed on one line whose amount is the exact sum of
-- its rating_cdrs costs rounded to the cent; no rated usage goes unbilled and no line bills what
-- was not rated. Rows returned are the breaks. The document of a day comes from the periods'
-- table here, not from the bills' models: the check does not trust what it checks.
with rated as (

    select
        {{ month_start('daily.rating_day') }} as billing_month,
        daily.msisdn,
        {{ document_type_of('plans.billing_type') }} as document_type,
        daily.record_type,
        sum(daily.cost) as rated_cost
    from (
        select rating_day, served_msisdn as msisdn, record_type, sum(cost) as cost
        from {{ source('rating', 'rating_cdrs') }}
        where 1 = 1 {{ billing_window('rating_day') }}  {#- the window's days: their partitions only #}
        group by rating_day, served_msisdn, record_type
    ) as daily
    left join {{ source('reference', 'subscriber_periods') }} as periods
        on periods.msisdn = daily.msisdn
        and {{ period_in_force('daily.rating_day', 'periods.valid_from', 'periods.valid_to') }}
    {#- the seed by its table, not ref(): a ref would make dbt build run this test with the seeds
        (a test is picked when any parent is), before anything is rated. The seed lives in the
        billing schema, as the bills do. #}
    left join {{ ref('billing_cdrs').schema }}.plan_catalogue as plans on plans.plan_name = periods.plan
    group by {{ month_start('daily.rating_day') }}, daily.msisdn, {{ document_type_of('plans.billing_type') }},
        daily.record_type

),

billed as (

    select
        lines.billing_month,
        lines.msisdn,
        bills.document_type,
        case lines.line_type when 'usage_voice' then 'voice' when 'usage_sms' then 'sms' else 'data' end
            as record_type,
        lines.amount
    from {{ ref('invoice_lines') }} as lines
    inner join {{ ref('billing_cdrs') }} as bills on bills.invoice_number = lines.invoice_number
    where lines.line_type in ('usage_voice', 'usage_sms', 'usage_data') {{ billing_window('lines.billing_month') }}

)

select
    coalesce(rated.billing_month, billed.billing_month) as billing_month,
    coalesce(rated.msisdn, billed.msisdn) as msisdn,
    coalesce(rated.document_type, billed.document_type) as document_type,
    coalesce(rated.record_type, billed.record_type) as record_type,
    rated.rated_cost,
    billed.amount as billed_amount
from rated
full outer join billed
    on billed.billing_month = rated.billing_month
    and billed.msisdn = rated.msisdn
    and billed.document_type = rated.document_type
    and billed.record_type = rated.record_type
where rated.rated_cost is null
    or billed.amount is null
    or billed.amount <> {{ to_bill_amount('rated.rated_cost') }}
