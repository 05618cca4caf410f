-- One bill per subscriber, billing month and document: an invoice (INV-) for the usage and fees of
-- postpaid and business plan periods, a usage statement (STM-) for the usage of prepaid ones (and
-- of days no period covers). Each CDR counts under the plan in force on its rating day
-- (stg_reference__subscriber_periods, the dated history): re-billing a past month applies the plans
-- of that month, and a move from prepaid to postpaid within a month gives a statement for the days
-- before it and an invoice for the days after. Billed: everyone with rated usage that month (per
-- document), and every postpaid or business subscriber with a period in force on some day of a
-- month being billed, traffic or not (the fee); no period and no usage: no bill.
-- Proration (macros/proration.sql), in days of the local month: a period's days_on_plan = the days
-- of the month within [valid_from, valid_to]; the invoice's fee = round(sum of monthly_fee x
-- days_on_plan / days_in_month over its periods, 2) - the sum exact, rounded once half up; each
-- period includes floor(included minutes x 60 x days_on_plan / days_in_month) seconds, used by its
-- own national calls in start order (int_allowance_calls). A bill's plan_id, billing_type and
-- price_basis are those of its latest period in the month (a statement with no period: unknown).
-- Amounts in the plan's currency (MAD): each usage line is its exact rated total rounded half up
-- to the cent, the allowance credit (exact until here) the same, once. A net plan adds VAT =
-- round(amount before tax x rate, 2); a VAT-inclusive (gross) plan's amounts include it: VAT =
-- round(total x rate / (1 + rate), 2), before tax = total - VAT. A month with no VAT rate in
-- force fails the build, naming the month. rated_cdrs and rated_cost: what the bill took in of
-- rating_cdrs, so revenue assurance sees a bill built before more CDRs were rated.
with usage as (

    select * from {{ ref('int_subscriber_month_usage') }}

),

periods as (

    select * from {{ ref('stg_reference__subscriber_periods') }}

),

subscribers as (

    select * from {{ ref('stg_reference__subscribers') }}

),

plans as (

    select * from {{ ref('plan_catalogue') }}

),

vat_rates as (

    select * from {{ ref('vat_rates') }}

),

months as (

    {%- set window_months = billing_months() %}
    {%- if window_months %}
    {%- for month in window_months %}
    select {{ date_literal(month) }} as billing_month{% if not loop.last %} union all{% endif %}
    {%- endfor %}
    {%- else %}
    select distinct billing_month from usage
    {%- endif %}

),

month_plans as (

    -- every plan period in force on some day of a billed month, with its days in that month
    select
        months.billing_month,
        periods.msisdn,
        periods.operator_id,
        periods.valid_from,
        plans.plan_id,
        plans.billing_type,
        plans.price_basis,
        plans.currency,
        plans.included_national_minutes,
        {{ document_type_of('plans.billing_type') }} as document_type,
        cast(plans.monthly_fee * {{ days_on_plan('months.billing_month', 'periods.valid_from', 'periods.valid_to') }}
            as decimal(18,2)) as fee_days,
        {{ days_on_plan('months.billing_month', 'periods.valid_from', 'periods.valid_to') }} as plan_days,
        {{ prorated_included_seconds('plans.included_national_minutes', 'months.billing_month',
            'periods.valid_from', 'periods.valid_to') }} as included_seconds
    from months
    inner join periods
        on {{ period_overlaps_month('months.billing_month', 'periods.valid_from', 'periods.valid_to') }}
    left join plans on plans.plan_name = periods.plan_name

),

document_plans as (

    -- per bill: its periods' days, fee x days (exact: the fee's cents times whole days), included
    -- seconds, and which is its latest period
    select
        billing_month,
        msisdn,
        document_type,
        sum(plan_days) as plan_days,
        cast(sum(fee_days) as decimal(18,2)) as fee_days,
        sum(included_seconds) as included_seconds,
        max(valid_from) as latest_valid_from
    from month_plans
    group by billing_month, msisdn, document_type

),

billed as (

    select billing_month, served_msisdn as msisdn, document_type from usage
    union
    select billing_month, msisdn, document_type from month_plans
    where billing_type in ('postpaid', 'business')

),

vat_of_month as (

    -- the rate in force on the first day of the month: the latest valid_from on or before it
    select months.billing_month, vat_rates.vat_rate
    from months
    inner join vat_rates on vat_rates.valid_from <= months.billing_month
    where not exists (
        select 1 from vat_rates as later
        where later.valid_from <= months.billing_month and later.valid_from > vat_rates.valid_from
    )

),

priced as (

    select
        billed.billing_month,
        billed.msisdn,
        coalesce(latest.operator_id, subscribers.operator_id) as operator_id,
        latest.plan_id,
        coalesce(latest.billing_type, 'unknown') as billing_type,
        billed.document_type,
        coalesce(usage.voice_calls, 0) as voice_calls,
        coalesce(usage.sms_count, 0) as sms_count,
        coalesce(usage.data_sessions, 0) as data_sessions,
        coalesce(usage.total_call_duration_s, 0) as total_call_duration_s,
        coalesce(usage.longest_call_duration_s, 0) as longest_call_duration_s,
        coalesce(usage.data_volume_bytes, 0) as data_volume_bytes,
        {{ to_bill_amount('coalesce(usage.voice_cost, 0)') }} as voice_amount,
        {{ to_bill_amount('coalesce(usage.sms_cost, 0)') }} as sms_amount,
        {{ to_bill_amount('coalesce(usage.data_cost, 0)') }} as data_amount,
        coalesce(latest.included_national_minutes, 0) as included_national_minutes,
        case when billed.document_type = 'invoice' then coalesce(document_plans.included_seconds, 0)
            else 0 end as included_national_seconds,
        coalesce(document_plans.plan_days, 0) as plan_days,
        case when billed.document_type = 'invoice' then coalesce(usage.allowance_seconds_used, 0)
            else 0 end as allowance_seconds_used,
        case when billed.document_type = 'invoice'
            then {{ to_bill_amount('coalesce(usage.allowance_credit, 0)') }}
            else cast(0 as decimal(18,2)) end as allowance_amount,
        -- the prorated fee: the exact sum of fee x days over the month's days, rounded once
        case when billed.document_type = 'invoice'
            then {{ to_bill_amount('coalesce(document_plans.fee_days, 0) / cast(' ~ days_in_month('billed.billing_month') ~ ' as decimal(12,0))') }}
            else cast(0 as decimal(18,2)) end as monthly_fee,
        {{ vat_rate_or_fail('vat_of_month.vat_rate', 'billed.billing_month') }} as vat_rate,
        coalesce(latest.price_basis, 'net') as price_basis,
        coalesce(usage.voice_calls, 0) + coalesce(usage.sms_count, 0) + coalesce(usage.data_sessions, 0)
            as rated_cdrs,
        coalesce(usage.voice_cost, 0) + coalesce(usage.sms_cost, 0) + coalesce(usage.data_cost, 0) as rated_cost,
        coalesce(latest.currency, 'MAD') as currency
    from billed
    left join usage
        on usage.billing_month = billed.billing_month
        and usage.served_msisdn = billed.msisdn
        and usage.document_type = billed.document_type
    left join document_plans
        on document_plans.billing_month = billed.billing_month
        and document_plans.msisdn = billed.msisdn
        and document_plans.document_type = billed.document_type
    left join month_plans as latest
        on latest.billing_month = billed.billing_month
        and latest.msisdn = billed.msisdn
        and latest.document_type = billed.document_type
        and latest.valid_from = document_plans.latest_valid_from
    left join subscribers on subscribers.msisdn = billed.msisdn
    left join vat_of_month on vat_of_month.billing_month = billed.billing_month

),

charged as (

    -- what the bill charges before VAT is worked out: net of it, or including it (price_basis)
    select
        priced.*,
        cast(priced.voice_amount + priced.sms_amount + priced.data_amount as decimal(18,2)) as usage_amount,
        cast(
            priced.voice_amount + priced.sms_amount + priced.data_amount
            - priced.allowance_amount + priced.monthly_fee as decimal(18,2)
        ) as charged_amount
    from priced

),

totals as (

    select
        charged.*,
        case when charged.price_basis = 'gross'
            then {{ to_bill_amount('charged.charged_amount * charged.vat_rate / (1 + charged.vat_rate)') }}
            else {{ to_bill_amount('charged.charged_amount * charged.vat_rate') }} end as vat_amount
    from charged

),

final as (

    select
        billing_month,
        {{ date_part_int('year', 'billing_month') }} as billing_year,
        {{ date_part_int('month', 'billing_month') }} as billing_month_number,
        cast(msisdn as varchar(16)) as msisdn,
        cast(operator_id as varchar(16)) as operator_id,
        cast(plan_id as varchar(32)) as plan_id,
        cast(billing_type as varchar(16)) as billing_type,
        cast(document_type as varchar(16)) as document_type,
        cast({{ dbt.concat([
            "case when document_type = 'invoice' then 'INV-' else 'STM-' end",
            "cast(" ~ date_part_int('year', 'billing_month') ~ " * 100 + " ~ date_part_int('month', 'billing_month') ~ " as varchar(6))",
            "'-'",
            "replace(msisdn, '+', '')",
        ]) }} as varchar(32)) as invoice_number,
        voice_calls,
        sms_count,
        data_sessions,
        total_call_duration_s,
        case when voice_calls > 0
            then cast(round(cast(total_call_duration_s as decimal(18,2)) / voice_calls, 2) as decimal(18,2))
            else cast(0 as decimal(18,2)) end as average_call_duration_s,
        longest_call_duration_s,
        data_volume_bytes,
        voice_amount,
        sms_amount,
        data_amount,
        usage_amount,
        cast(included_national_minutes as int) as included_national_minutes,
        cast(included_national_seconds as bigint) as included_national_seconds,
        cast(plan_days as int) as plan_days,
        cast(allowance_seconds_used as bigint) as allowance_seconds_used,
        allowance_amount,
        cast(monthly_fee as decimal(18,2)) as monthly_fee,
        cast(price_basis as varchar(8)) as price_basis,
        case when price_basis = 'gross' then cast(charged_amount - vat_amount as decimal(18,2))
            else charged_amount end as amount_before_tax,
        cast(vat_rate as decimal(5,4)) as vat_rate,
        vat_amount,
        case when price_basis = 'gross' then charged_amount
            else cast(charged_amount + vat_amount as decimal(18,2)) end as total_amount,
        cast(rated_cdrs as bigint) as rated_cdrs,
        cast(rated_cost as decimal(18,6)) as rated_cost,
        cast(currency as varchar(3)) as currency
    from totals

)

select * from final
