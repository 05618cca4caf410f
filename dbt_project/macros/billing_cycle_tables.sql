{#- The record of closed billing cycles, in the billing schema: written once by `cdr billing close`
    (cdr_platform/lib/billing/cycles.py), never updated, never rebuilt by dbt. This macro is the one
    definition of the three tables; it runs as a pre-hook of billing_adjustments (the first model
    that reads them), so they exist from the first billing build, before any month is closed.

    - billing_closed_months: one row per closed month (when, by whom, what was issued);
    - issued_invoices: every document issued - invoice, statement (a prepaid usage statement) or
      credit note - under its number from a gapless series per document type and year of issue
      (INV-2026-000001, STM-..., CN-...). A bill of the closed month carries its own amounts
      (bill_*, from billing_cdrs, and provisional_number: its billing_cdrs.invoice_number); the
      adjustments it settles of earlier closed months are adjustment_*; what is due is the sum;
    - issued_invoice_lines: the document's lines: the bill's own (invoice_lines, numbers 1-6), then
      one adjustment line (101, 102, ...) per earlier closed bill it corrects, with the month and
      the invoice it adjusts and how many CDRs of that month came after its close;
    - billing_closed_batches: per closed month, the last mediation batch (per streaming query) its
      issued bills took in: a CDR of the month from a later batch, or another query (a replay of
      rejects), came after the close - a CDR behind an adjustment. A re-rated day brings none. -#}
{% macro billing_cycle_tables() -%}
    {%- set schema = this.schema -%}
    {%- set ts = dbt.type_timestamp() -%}
    {{ create_table_if_missing(schema, 'billing_closed_months', [
        'billing_month date not null',
        'issue_date date not null',
        'closed_at ' ~ ts ~ ' not null',
        'closed_by varchar(64) not null',
        'documents int not null',
        'issued_total decimal(18,2) not null',
        'rated_cdrs bigint not null',
        'rated_cost decimal(28,6) not null',
        'constraint pk_billing_closed_months primary key (billing_month)',
    ]) }};
    {{ create_table_if_missing(schema, 'issued_invoices', [
        'invoice_number varchar(32) not null',
        'document_type varchar(16) not null',
        'document_year int not null',
        'sequence_number int not null',
        'billing_month date not null',
        'issue_date date not null',
        'msisdn varchar(16) not null',
        'operator_id varchar(16)',
        'plan_id varchar(32)',
        'price_basis varchar(8) not null',
        'vat_rate decimal(5,4) not null',
        'currency varchar(3) not null',
        'provisional_number varchar(32)',
        'bill_amount_before_tax decimal(18,2) not null',
        'bill_vat_amount decimal(18,2) not null',
        'bill_total_amount decimal(18,2) not null',
        'adjustment_before_tax decimal(18,2) not null',
        'adjustment_vat decimal(18,2) not null',
        'adjustment_total decimal(18,2) not null',
        'amount_before_tax decimal(18,2) not null',
        'vat_amount decimal(18,2) not null',
        'total_amount decimal(18,2) not null',
        'rated_cdrs bigint not null',
        'rated_cost decimal(28,6) not null',
        'closed_at ' ~ ts ~ ' not null',
        'constraint pk_issued_invoices primary key (invoice_number)',
        'constraint uq_issued_invoices_series unique (document_type, document_year, sequence_number)',
    ]) }};
    {{ create_table_if_missing(schema, 'issued_invoice_lines', [
        'invoice_number varchar(32) not null',
        'line_number int not null',
        'line_type varchar(16) not null',
        'description varchar(128) not null',
        'quantity decimal(18,2)',
        'unit varchar(8)',
        'amount decimal(18,2) not null',
        'vat_amount decimal(18,2)',
        'total_amount decimal(18,2)',
        'adjusts_invoice_number varchar(32)',
        'adjusts_month date',
        'adjusts_document_type varchar(16)',
        'adjusts_cdrs bigint',
        'constraint pk_issued_invoice_lines primary key (invoice_number, line_number)',
    ]) }};
    {{ create_table_if_missing(schema, 'billing_closed_batches', [
        'billing_month date not null',
        'query_id varchar(64) not null',
        'max_batch_id bigint not null',
        'constraint pk_billing_closed_batches primary key (billing_month, query_id)',
    ]) }}
{%- endmacro %}


{% macro create_table_if_missing(schema, name, columns) -%}
    {{ return(adapter.dispatch('create_table_if_missing')(schema, name, columns)) }}
{%- endmacro %}

{% macro default__create_table_if_missing(schema, name, columns) -%}
    create table if not exists {{ schema }}.{{ name }} ({{ columns | join(', ') }})
{%- endmacro %}

{% macro sqlserver__create_table_if_missing(schema, name, columns) -%}
    if object_id(N'{{ schema }}.{{ name }}', N'U') is null create table {{ schema }}.{{ name }} ({{ columns | join(', ') }})
{%- endmacro %}


{#- One of the billing cycle tables, in the schema of the billing models (`schema`: by default the model's own). Not a dbt source: the
    tables are written by `cdr billing close`, which reads billing_adjustments - as a source they
    would make Dagster's lineage a cycle. -#}
{% macro billing_cycle_table(name, schema=none) -%}
    {{ schema or this.schema }}.{{ name }}
{%- endmacro %}
