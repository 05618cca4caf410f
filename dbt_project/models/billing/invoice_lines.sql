-- The lines of each bill, numbered in a fixed order: usage per type (when used), the allowance as
-- a negative line and the monthly fee (invoices only; prorated: its quantity the days on plans
-- when they are fewer than the month's), VAT. A bill's total is the sum of its lines;
-- on a VAT-inclusive bill (a prepaid statement) line 6 says how much VAT the amounts include
-- (`vat_included`), which is not added again.
with bills as (

    select * from {{ ref('billing_cdrs') }}
    where 1 = 1
        {{ billing_window('billing_month') }}

),

lines as (

    select billing_month, invoice_number, msisdn, 1 as line_number, 'usage_voice' as line_type,
        'Voice calls' as description,
        cast(round(cast(total_call_duration_s as decimal(18,2)) / 60, 2) as decimal(18,2)) as quantity,
        'min' as unit, voice_amount as amount
    from bills where voice_calls > 0

    union all

    select billing_month, invoice_number, msisdn, 2, 'usage_sms', 'SMS',
        cast(sms_count as decimal(18,2)), 'sms', sms_amount
    from bills where sms_count > 0

    union all

    select billing_month, invoice_number, msisdn, 3, 'usage_data', 'Mobile data',
        cast(round(cast(data_volume_bytes as decimal(20,2)) / 1000000, 2) as decimal(18,2)), 'MB', data_amount
    from bills where data_sessions > 0

    union all

    select billing_month, invoice_number, msisdn, 4, 'allowance', 'Included national minutes used',
        cast(round(cast(allowance_seconds_used as decimal(18,2)) / 60, 2) as decimal(18,2)), 'min',
        cast(0 - allowance_amount as decimal(18,2))
    from bills where document_type = 'invoice' and allowance_seconds_used > 0

    union all

    -- a whole month on plans: 1 month; part of one (activated or terminated within it): its days
    select billing_month, invoice_number, msisdn, 5, 'monthly_fee', 'Monthly fee',
        case when plan_days < {{ days_in_month('billing_month') }} then cast(plan_days as decimal(18,2))
            else cast(1 as decimal(18,2)) end,
        case when plan_days < {{ days_in_month('billing_month') }} then 'days' else 'month' end,
        monthly_fee
    from bills where document_type = 'invoice'

    union all

    select billing_month, invoice_number, msisdn, 6,
        case when price_basis = 'gross' then 'vat_included' else 'vat' end,
        case when price_basis = 'gross' then 'VAT included' else 'VAT' end,
        cast(vat_rate * 100 as decimal(18,2)), '%', vat_amount
    from bills

),

final as (

    select
        billing_month,
        cast(invoice_number as varchar(32)) as invoice_number,
        cast(msisdn as varchar(16)) as msisdn,
        cast(line_number as int) as line_number,
        cast(line_type as varchar(16)) as line_type,
        cast(description as varchar(64)) as description,
        cast(quantity as decimal(18,2)) as quantity,
        cast(unit as varchar(8)) as unit,
        cast(amount as decimal(18,2)) as amount
    from lines

)

select * from final
