{#- The billing models' incremental strategy (incremental_strategy: billing_month_swap): a run
    replaces its months whole, atomically. dbt's incremental materialization first builds the
    run's rows into a work table (its temp relation: a failure there, like a month with no VAT
    rate, touches nothing); then ONE transaction deletes the months being replaced and inserts
    the work table's rows. A model's month is then either wholly its old rows or wholly its new
    ones: a failure after the delete (an insert refused, a lost connection) rolls the delete back.

    The months replaced: those of the billing window (billing_window: the vars
    billing_month_start / billing_month_end; every month without them), and any month the new
    rows carry (unique_key: the month column). A row the new run no longer produces (a subscriber
    whose usage went) is gone, not left over as an upsert would leave it.

    Each model is replaced on its own (allowance_usage, billing_cdrs, invoice_lines, in that
    order): a build that fails at a later model leaves the earlier ones' months new and the
    failed one's old, wholly; its checks (billing_totals_are_the_sum_of_their_lines) then fail
    until the month is billed again. -#}
{% macro get_incremental_billing_month_swap_sql(arg_dict) -%}
    {%- set month_column = arg_dict["unique_key"] -%}
    {%- if not month_column or month_column is not string -%}
        {{ exceptions.raise_compiler_error("billing_month_swap replaces months: unique_key is the month column (one column), got " ~ month_column) }}
    {%- endif -%}
    {%- if arg_dict.get("incremental_predicates") -%}
        {{ exceptions.raise_compiler_error("billing_month_swap takes no incremental_predicates: it replaces the billing window's months") }}
    {%- endif -%}
    {{ return(adapter.dispatch('billing_month_swap_sql')(
        arg_dict["target_relation"], arg_dict["temp_relation"], month_column, arg_dict["dest_columns"])) }}
{%- endmacro %}


{#- The two statements of the swap, the same on both engines: the months out, the new rows in. -#}
{% macro billing_month_swap_delete(target, source, month_column) -%}
    delete from {{ target }}
    where (1 = 1 {{ billing_window(month_column) }})
        or {{ month_column }} in (select {{ month_column }} from {{ source }})
{%- endmacro %}

{% macro billing_month_swap_insert(target, source, dest_columns) -%}
    {%- set columns = get_quoted_csv(dest_columns | map(attribute="name")) -%}
    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ source }}
{%- endmacro %}


{#- PostgreSQL: dbt runs the model's work table and this statement in its one transaction and
    commits it at the model's end; and both statements go in one simple query, which PostgreSQL
    runs as one transaction even outside dbt's. No BEGIN/COMMIT here: a COMMIT would end dbt's
    transaction early. -#}
{% macro postgres__billing_month_swap_sql(target, source, month_column, dest_columns) -%}
    {{ billing_month_swap_delete(target, source, month_column) }};
    {{ billing_month_swap_insert(target, source, dest_columns) }}
{%- endmacro %}


{#- SQL Server: dbt-sqlserver commits each statement on its own (unless the behaviour flag
    dbt_sqlserver_use_dbt_transactions is on; nested inside its transaction, this one then
    commits with it), so the batch holds its own transaction. XACT_ABORT ON: any run-time
    error rolls the whole transaction back and ends the batch, never reaching the COMMIT.
    NOCOUNT ON: no row count is sent ahead of an error, so the driver raises it from the
    execute instead of leaving it in a later result set. -#}
{% macro sqlserver__billing_month_swap_sql(target, source, month_column, dest_columns) -%}
    set xact_abort on;
    set nocount on;
    begin transaction;
    {{ billing_month_swap_delete(target, source, month_column) }};
    {{ billing_month_swap_insert(target, source, dest_columns) }};
    commit transaction;
    set nocount off;
{%- endmacro %}


{% macro default__billing_month_swap_sql(target, source, month_column, dest_columns) -%}
    {{ exceptions.raise_compiler_error("billing_month_swap: no atomic month swap written for the adapter " ~ adapter.type()) }}
{%- endmacro %}
