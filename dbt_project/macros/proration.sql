{#- Subscriber lifecycle in billing: a subscriber's dated plan periods (reference.subscriber_periods:
    valid_from, valid_to = the last day in force, inclusive, null = open-ended) against a billing
    month (a local month, its first day). The proration rule, in days of the local month:

      days_on_plan = the days of the month within [valid_from, valid_to]
      fee          = round(sum over the document's periods of monthly_fee x days_on_plan / days_in_month, 2)
                     (the sum is exact - the fees' cents times whole days over the one days_in_month -
                     and the bill rounds it once, half up, like every other line)
      included     = floor(included_national_minutes x 60 x days_on_plan / days_in_month) seconds per
                     period, consumed by that period's national calls in start order

    One definition, used by the allowance (int_allowance_calls) and the bills (billing_cdrs). -#}

{#- The days of the month starting on `month` (a first day), as an int. -#}
{% macro days_in_month(month) -%}
    {{ days_between(month, next_month_start(month)) }}
{%- endmacro %}

{#- The last day of the month starting on `month`. -#}
{% macro month_last_day(month) -%}
    {{ add_days(-1, next_month_start(month)) }}
{%- endmacro %}

{#- A period [valid_from, valid_to] (valid_to null: open-ended) overlaps the month starting on `month`. -#}
{% macro period_overlaps_month(month, valid_from, valid_to) -%}
    ({{ valid_from }} <= {{ month_last_day(month) }} and ({{ valid_to }} is null or {{ valid_to }} >= {{ month }}))
{%- endmacro %}

{#- A period is in force on `day`. -#}
{% macro period_in_force(day, valid_from, valid_to) -%}
    ({{ valid_from }} <= {{ day }} and ({{ valid_to }} is null or {{ valid_to }} >= {{ day }}))
{%- endmacro %}

{#- days_on_plan: the days of the month starting on `month` within [valid_from, valid_to], as an
    int (for a period that overlaps the month; no GREATEST/LEAST: SQL Server has them from 2022 only). -#}
{% macro days_on_plan(month, valid_from, valid_to) -%}
    ({{ days_between(
        "case when " ~ valid_from ~ " > " ~ month ~ " then " ~ valid_from ~ " else " ~ month ~ " end",
        "case when " ~ valid_to ~ " is null or " ~ valid_to ~ " > " ~ month_last_day(month)
            ~ " then " ~ month_last_day(month) ~ " else " ~ valid_to ~ " end"
    ) }} + 1)
{%- endmacro %}

{#- The included national seconds of a period in the month: floor(minutes x 60 x days_on_plan /
    days_in_month), integer arithmetic on both engines (non-negative: truncation is the floor). -#}
{% macro prorated_included_seconds(included_minutes, month, valid_from, valid_to) -%}
    (cast({{ included_minutes }} as bigint) * 60 * {{ days_on_plan(month, valid_from, valid_to) }}
        / {{ days_in_month(month) }})
{%- endmacro %}

{#- The document a plan's usage goes on: an invoice for postpaid and business, a usage statement
    for prepaid (and for usage no period covers: billing_type null). -#}
{% macro document_type_of(billing_type) -%}
    case when {{ billing_type }} in ('postpaid', 'business') then 'invoice' else 'usage_statement' end
{%- endmacro %}

{#- The first day of the month after the one starting on `month`, as a date. -#}
{% macro next_month_start(month) -%}
    cast({{ dbt.dateadd('month', 1, month) }} as date)
{%- endmacro %}

{#- The whole days from date `start` to date `end` (end - start), as an int. -#}
{% macro days_between(start, end) -%}
    {{ return(adapter.dispatch('days_between')(start, end)) }}
{%- endmacro %}

{% macro default__days_between(start, end) -%}
    cast({{ dbt.datediff(start, end, 'day') }} as int)
{%- endmacro %}

{#- PostgreSQL: a date less a date is its days, an int. -#}
{% macro postgres__days_between(start, end) -%}
    (cast({{ end }} as date) - cast({{ start }} as date))
{%- endmacro %}
