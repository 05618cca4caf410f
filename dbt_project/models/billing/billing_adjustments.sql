{{ config(materialized='table', pre_hook="{{ billing_cycle_tables() }}") }}
-- What a closed month owes or is owed since it was issued: per closed billing month, subscriber and
-- bill type, the month's bill as billing_cdrs values it now, less the bill issued at the close
-- (issued_invoices), less the adjustments already issued for it on later documents
-- (issued_invoice_lines.adjusts_*). A late CDR, a re-rated day or a corrected reference row
-- re-bills the month in billing_cdrs; the issued bill never changes, and the difference waits
-- here for the subscriber's next open bill, where `cdr billing close` issues it: an adjustment
-- line on that month's invoice or statement when the customer owes more, a credit note when the
-- difference is in the customer's favour (adjustment_document_type). A table rebuilt whole by each
-- billing run (pending adjustments are few), whichever month the run bills.
--
-- Amounts are exact differences of amounts already rounded to the cent, VAT included: the
-- reconciliation rated total = issued + adjustments + open holds per month to the cent
-- (tests/billing_closed_months_reconcile.sql). late_cdrs: the month's rated CDRs of the
-- subscriber that came after the close (mediated in a later batch), the CDRs behind the
-- difference; a re-rated day or a corrected reference row changes amounts with none.
with closed as (

    select billing_month from {{ billing_cycle_table('billing_closed_months') }}

),

valued as (

    select
        bills.billing_month,
        bills.msisdn,
        case when bills.document_type = 'invoice' then 'invoice' else 'statement' end as document_type,
        bills.operator_id,
        bills.price_basis,
        bills.vat_rate,
        bills.currency,
        bills.vat_amount,
        bills.total_amount
    from {{ ref('billing_cdrs') }} as bills
    inner join closed on closed.billing_month = bills.billing_month

),

issued as (

    select
        billing_month, msisdn, document_type, invoice_number, operator_id, price_basis, vat_rate, currency,
        bill_vat_amount as vat_amount, bill_total_amount as total_amount
    from {{ billing_cycle_table('issued_invoices') }}
    where provisional_number is not null  {#- a closed month's own bills, not its adjustments' documents #}

),

settled as (

    select
        lines.adjusts_month as billing_month,
        documents.msisdn,
        lines.adjusts_document_type as document_type,
        sum(lines.vat_amount) as vat_amount,
        sum(lines.total_amount) as total_amount
    from {{ billing_cycle_table('issued_invoice_lines') }} as lines
    inner join {{ billing_cycle_table('issued_invoices') }} as documents
        on documents.invoice_number = lines.invoice_number
    where lines.adjusts_month is not null
    group by lines.adjusts_month, documents.msisdn, lines.adjusts_document_type

),

bill_keys as (

    select billing_month, msisdn, document_type from valued
    union
    select billing_month, msisdn, document_type from issued
    union
    select billing_month, msisdn, document_type from settled

),

differences as (

    select
        bill_keys.billing_month,
        bill_keys.msisdn,
        bill_keys.document_type,
        issued.invoice_number as adjusts_invoice_number,
        coalesce(valued.operator_id, issued.operator_id) as operator_id,
        coalesce(valued.price_basis, issued.price_basis) as price_basis,
        coalesce(valued.vat_rate, issued.vat_rate) as vat_rate,
        coalesce(valued.currency, issued.currency) as currency,
        coalesce(valued.vat_amount, 0) - coalesce(issued.vat_amount, 0) - coalesce(settled.vat_amount, 0)
            as vat_amount,
        coalesce(valued.total_amount, 0) - coalesce(issued.total_amount, 0) - coalesce(settled.total_amount, 0)
            as total_amount
    from bill_keys
    left join valued
        on valued.billing_month = bill_keys.billing_month and valued.msisdn = bill_keys.msisdn
        and valued.document_type = bill_keys.document_type
    left join issued
        on issued.billing_month = bill_keys.billing_month and issued.msisdn = bill_keys.msisdn
        and issued.document_type = bill_keys.document_type
    left join settled
        on settled.billing_month = bill_keys.billing_month and settled.msisdn = bill_keys.msisdn
        and settled.document_type = bill_keys.document_type

),

pending as (

    select * from differences where total_amount <> 0 or vat_amount <> 0

),

late as (

    -- the CDRs of a closed month mediated after its close: from a batch later than the last one
    -- its bills took in, or from another streaming query (billing_closed_batches); only those of
    -- subscribers with a pending difference are counted
    select closed.billing_month, rated.served_msisdn as msisdn, count(*) as late_cdrs
    from {{ source('rating', 'rating_cdrs') }} as rated
    inner join closed
        on rated.rating_day >= closed.billing_month
        and rated.rating_day < {{ add_months(1, 'closed.billing_month') }}
    left join {{ billing_cycle_table('billing_closed_batches') }} as taken
        on taken.billing_month = closed.billing_month and taken.query_id = rated.query_id
    where rated.served_msisdn in (select msisdn from pending)
        and (taken.query_id is null or rated.batch_id > taken.max_batch_id)
    group by closed.billing_month, rated.served_msisdn

),

final as (

    select
        pending.billing_month as adjusts_month,
        cast(pending.msisdn as varchar(16)) as msisdn,
        cast(pending.document_type as varchar(16)) as document_type,
        cast(pending.adjusts_invoice_number as varchar(32)) as adjusts_invoice_number,
        cast(pending.operator_id as varchar(16)) as operator_id,
        cast(pending.price_basis as varchar(8)) as price_basis,
        cast(pending.vat_rate as decimal(5,4)) as vat_rate,
        cast(pending.currency as varchar(3)) as currency,
        cast(pending.total_amount - pending.vat_amount as decimal(18,2)) as amount_before_tax,
        cast(pending.vat_amount as decimal(18,2)) as vat_amount,
        cast(pending.total_amount as decimal(18,2)) as total_amount,
        cast(case when pending.total_amount < 0 then 'credit_note' else pending.document_type end as varchar(16))
            as adjustment_document_type,
        cast(coalesce(late.late_cdrs, 0) as bigint) as late_cdrs
    from pending
    left join late on late.billing_month = pending.billing_month and late.msisdn = pending.msisdn

)

select * from final
