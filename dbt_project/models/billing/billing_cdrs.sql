-- One bill per subscriber per billing month: everyone with rated usage that month, and every
-- postpaid or business subscriber (the monthly fee) in each month being billed, traffic or not.
-- Amounts in the plan's currency (MAD): each usage line is its exact rated total rounded half up
-- to the cent, the allowance credit (exact until here) the same, once. A net plan adds VAT =
-- round(amount before tax x rate, 2); a VAT-inclusive (gross) plan's amounts include it: VAT =
-- round(total x rate / (1 + rate), 2), before tax = total - VAT. A month with no VAT rate in
-- force fails the build, naming the month. rated_cdrs and rated_cost: what the bill took in of
-- rating_cdrs, so revenue assurance sees a bill built before more CDRs were rated.
with usage as (

    select * from {{ ref('int_subscriber_month_usage') }}

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

billed as (

    select billing_month, served_msisdn as msisdn from usage
    union
    select months.billing_month, subscribers.msisdn
    from months
    cross join subscribers
    inner join plans on plans.plan_name = subscribers.plan_name
    where plans.billing_type <> 'prepaid'

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
        subscribers.operator_id,
        plans.plan_id,
        coalesce(plans.billing_type, 'unknown') as billing_type,
        case when plans.billing_type in ('postpaid', 'business') then 'invoice' else 'usage_statement' end
            as document_type,
        coalesce(usage.voice_calls, 0) as voice_calls,
        coalesce(usage.sms_count, 0) as sms_count,
        coalesce(usage.data_sessions, 0) as data_sessions,
        coalesce(usage.total_call_duration_s, 0) as total_call_duration_s,
        coalesce(usage.longest_call_duration_s, 0) as longest_call_duration_s,
        coalesce(usage.data_volume_bytes, 0) as data_volume_bytes,
        {{ to_bill_amount('coalesce(usage.voice_cost, 0)') }} as voice_amount,
        {{ to_bill_amount('coalesce(usage.sms_cost, 0)') }} as sms_amount,
        {{ to_bill_amount('coalesce(usage.data_cost, 0)') }} as data_amount,
        coalesce(plans.included_national_minutes, 0) as included_national_minutes,
        case when plans.billing_type in ('postpaid', 'business') then coalesce(usage.allowance_seconds_used, 0)
            else 0 end as allowance_seconds_used,
        case when plans.billing_type in ('postpaid', 'business')
            then {{ to_bill_amount('coalesce(usage.allowance_credit, 0)') }}
            else cast(0 as decimal(18,2)) end as allowance_amount,
        case when plans.billing_type in ('postpaid', 'business') then plans.monthly_fee
            else cast(0 as decimal(18,2)) end as monthly_fee,
        {{ vat_rate_or_fail('vat_of_month.vat_rate', 'billed.billing_month') }} as vat_rate,
        coalesce(plans.price_basis, 'net') as price_basis,
        coalesce(usage.voice_calls, 0) + coalesce(usage.sms_count, 0) + coalesce(usage.data_sessions, 0)
            as rated_cdrs,
        coalesce(usage.voice_cost, 0) + coalesce(usage.sms_cost, 0) + coalesce(usage.data_cost, 0) as rated_cost,
        coalesce(plans.currency, 'MAD') as currency
    from billed
    left join usage
        on usage.billing_month = billed.billing_month and usage.served_msisdn = billed.msisdn
    left join subscribers on subscribers.msisdn = billed.msisdn
    left join plans on plans.plan_name = subscribers.plan_name
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
