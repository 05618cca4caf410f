{{ config(meta={'dagster': {'ref': {'name': 'billing_adjustments'}}}) }}
-- Reconciliation of the billing cycles, per month and to the cent: what billing_cdrs values a
-- month's bills at (the rated usage, allowance, fees and VAT) equals what was issued for it at its
-- close, plus the adjustments issued for it since, plus those pending (billing_adjustments); a
-- month not closed is all open. A row is a month where that does not hold.
{%- set schema = ref('billing_adjustments').schema %}
with valued as (

    select billing_month, sum(total_amount) as valued_total
    from {{ ref('billing_cdrs') }}
    group by billing_month

),

issued as (

    select billing_month, sum(bill_total_amount) as issued_total
    from {{ billing_cycle_table('issued_invoices', schema) }}
    where provisional_number is not null
    group by billing_month

),

adjusted as (

    select adjusts_month as billing_month, sum(total_amount) as adjusted_total
    from {{ billing_cycle_table('issued_invoice_lines', schema) }}
    where adjusts_month is not null
    group by adjusts_month

),

pending as (

    select adjusts_month as billing_month, sum(total_amount) as pending_total
    from {{ ref('billing_adjustments') }}
    group by adjusts_month

),

months as (

    select billing_month from valued
    union select billing_month from issued
    union select billing_month from adjusted
    union select billing_month from pending

)

select
    months.billing_month,
    coalesce(valued.valued_total, 0) as valued_total,
    coalesce(issued.issued_total, 0) as issued_total,
    coalesce(adjusted.adjusted_total, 0) as adjusted_total,
    coalesce(pending.pending_total, 0) as pending_total,
    case when closed.billing_month is null then coalesce(valued.valued_total, 0) else 0 end as open_total
from months
left join valued on valued.billing_month = months.billing_month
left join issued on issued.billing_month = months.billing_month
left join adjusted on adjusted.billing_month = months.billing_month
left join pending on pending.billing_month = months.billing_month
left join {{ billing_cycle_table('billing_closed_months', schema) }} as closed
    on closed.billing_month = months.billing_month
where coalesce(valued.valued_total, 0) <> coalesce(issued.issued_total, 0) + coalesce(adjusted.adjusted_total, 0)
    + coalesce(pending.pending_total, 0)
    + case when closed.billing_month is null then coalesce(valued.valued_total, 0) else 0 end
