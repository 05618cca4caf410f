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
