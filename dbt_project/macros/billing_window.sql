{#- The billing months a run rebuilds: a Dagster monthly partition passes its window as the vars
    billing_month_start / billing_month_end (dates, end exclusive). Without them: every month.
    Both are first days of months, so the window can filter a month's days as well (rating_day:
    PostgreSQL then reads only those days' partitions of rating_cdrs). -#}
{% macro billing_window(column) -%}
    {%- set start = var('billing_month_start', none) -%}
    {%- set end = var('billing_month_end', none) -%}
    {%- if (start and (start | string)[8:10] != '01') or (end and (end | string)[8:10] != '01') -%}
        {{ exceptions.raise_compiler_error("billing_month_start and billing_month_end are first days of months, got " ~ start ~ " and " ~ end) }}
    {%- elif start and end -%}
        and {{ column }} >= {{ date_literal(start) }} and {{ column }} < {{ date_literal(end) }}
    {%- elif start or end -%}
        {{ exceptions.raise_compiler_error("billing_month_start and billing_month_end go together") }}
    {%- endif -%}
{%- endmacro %}


{#- The first days of the months of the billing window ([billing_month_start, billing_month_end)),
    as 'YYYY-MM-01' strings; empty without a window. A month is billed whether or not it had
    traffic: a postpaid subscriber owes the fee of every month. -#}
{% macro billing_months() -%}
    {%- set start = var('billing_month_start', none) -%}
    {%- set end = var('billing_month_end', none) -%}
    {%- if not (start and end) -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set ns = namespace(year=(start | string)[0:4] | int, month=(start | string)[5:7] | int, months=[]) -%}
    {%- set last = ((end | string)[0:4] | int) * 12 + ((end | string)[5:7] | int) -%}
    {%- for _ in range(1200) if ns.year * 12 + ns.month < last -%}
        {%- set ns.months = ns.months + ['%04d-%02d-01' % (ns.year, ns.month)] -%}
        {%- if ns.month == 12 -%}
            {%- set ns.year, ns.month = ns.year + 1, 1 -%}
        {%- else -%}
            {%- set ns.month = ns.month + 1 -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(ns.months) }}
{%- endmacro %}
