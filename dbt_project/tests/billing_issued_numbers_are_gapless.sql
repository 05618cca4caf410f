{{ config(meta={'dagster': {'ref': {'name': 'billing_adjustments'}}}) }}
-- The issued documents' numbers are gapless series per document type and year of issue: each
-- series runs from 1 to its count, its numbers unique. A row is a series with a gap (a document
-- deleted from the issued record) or a repeat.
{%- set schema = ref('billing_adjustments').schema %}
select document_type, document_year, count(*) as documents, count(distinct sequence_number) as numbers,
    min(sequence_number) as first_number, max(sequence_number) as last_number
from {{ billing_cycle_table('issued_invoices', schema) }}
group by document_type, document_year
having min(sequence_number) <> 1
    or max(sequence_number) <> count(*)
    or count(distinct sequence_number) <> count(*)
