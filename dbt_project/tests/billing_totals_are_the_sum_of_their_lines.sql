{{ config(meta={'dagster': {'ref': {'name': 'billing_cdrs'}}}) }}
-- A bill's total is the sum of its lines (the VAT a VAT-inclusive bill includes is not added
-- again), and its amount before tax the sum of all but VAT, less the VAT included.
with lines as (

    select
        invoice_number,
        sum(case when line_type <> 'vat_included' then amount else 0 end) as lines_total,
        sum(case when line_type not in ('vat', 'vat_included') then amount else 0 end)
            - sum(case when line_type = 'vat_included' then amount else 0 end) as lines_before_tax
    from {{ ref('invoice_lines') }}
    where 1 = 1 {{ billing_window('billing_month') }}
    group by invoice_number

)

select bills.invoice_number, bills.total_amount, lines.lines_total, bills.amount_before_tax, lines.lines_before_tax
from {{ ref('billing_cdrs') }} as bills
left join lines on lines.invoice_number = bills.invoice_number
where 1 = 1 {{ billing_window('bills.billing_month') }}
    and (lines.lines_total is null
        or lines.lines_total <> bills.total_amount
        or lines.lines_before_tax <> bills.amount_before_tax)
