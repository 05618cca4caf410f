-- Every document issued at a month's close (billing.issued_invoices, written by `cdr billing
-- close`): invoices, usage statements and credit notes, with their number, customer, month and
-- issue date, amounts (what is due, and the part of it that adjusts earlier closed months) and
-- where its PDF is under the data folder (CDR_DATA_DIR). Not a source of its own in dbt's graph:
-- the issued tables are created with billing_adjustments (macros/billing_cycle_tables.sql).
{%- set billing_schema = ref('billing_adjustments').schema %}
with documents as (

    select * from {{ billing_cycle_table('issued_invoices', billing_schema) }}

),

adjustment_lines as (

    select invoice_number, count(*) as adjustment_lines
    from {{ billing_cycle_table('issued_invoice_lines', billing_schema) }}
    where adjusts_month is not null
    group by invoice_number

),

subscribers as (

    select subscriber_key, msisdn from {{ ref('dim_subscriber') }}

),

operators as (

    select operator_key, operator_id from {{ ref('dim_operator') }}

),

final as (

    select
        cast(documents.invoice_number as varchar(32)) as invoice_number,
        cast(documents.document_type as varchar(16)) as document_type,
        cast(documents.sequence_number as int) as sequence_number,
        documents.billing_month,
        cast({{ date_key('documents.issue_date') }} as int) as issue_date_key,
        documents.issue_date,
        cast(documents.msisdn as varchar(16)) as msisdn,
        subscribers.subscriber_key,
        operators.operator_key,
        cast(documents.amount_before_tax as decimal(18,4)) as amount_before_tax,
        cast(documents.vat_amount as decimal(18,4)) as vat_amount,
        cast(documents.total_amount as decimal(18,4)) as total_amount,
        cast(documents.adjustment_total as decimal(18,4)) as adjustment_total,
        cast(coalesce(adjustment_lines.adjustment_lines, 0) as int) as adjustment_lines,
        cast({{ dbt.concat([
            "'bills/'",
            "cast(" ~ date_part_int('year', 'documents.billing_month') ~ " as varchar(4))",
            "'-'",
            "case when " ~ date_part_int('month', 'documents.billing_month') ~ " < 10 then '0' else '' end",
            "cast(" ~ date_part_int('month', 'documents.billing_month') ~ " as varchar(2))",
            "'/'",
            "documents.invoice_number",
            "'.pdf'",
        ]) }} as varchar(64)) as document_path
    from documents
    left join adjustment_lines on adjustment_lines.invoice_number = documents.invoice_number
    left join subscribers on subscribers.msisdn = documents.msisdn
    left join operators on operators.operator_id = documents.operator_id

)

select * from final
