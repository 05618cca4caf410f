-- The allowance rule: a plan's included national minutes are consumed by the month's national
-- calls in order of start time (then record id), per plan period: each call counts under the
-- period in force on its rating day (stg_reference__subscriber_periods), and a period that covers
-- part of the month includes its prorated seconds, floor(minutes x 60 x days_on_plan /
-- days_in_month) (macros/proration.sql), used by its own calls only. Only invoiced plans
-- (postpaid, business) have an allowance. A call wholly inside the allowance is credited
-- its rated price; the call that exhausts it, the covered share of its price (covered seconds /
-- duration, kept to 12 decimals: the bill rounds the month's credit once, to the cent); later
-- calls nothing. The rated list price stays in rating_cdrs: the bill shows the credit as its own line.
{%- set window_months = billing_months() %}
select
    record_id,
    served_msisdn,
    billing_month,
    duration_s,
    covered_s,
    cost,
    case
        when covered_s = duration_s then cast(cost as decimal(28,12))
        when covered_s = 0 then cast(0 as decimal(28,12))
        -- the factors as decimal(12,0): SQL Server then keeps 12 decimals through the product and quotient
        else cast(
            cast(cost as decimal(24,12)) * cast(covered_s as decimal(12,0)) / cast(duration_s as decimal(12,0))
            as decimal(28,12)
        )
    end as allowance_credit
from (
    select
        running.record_id,
        running.served_msisdn,
        running.billing_month,
        running.duration_s,
        running.cost,
        case
            when running.used_through_s <= running.allowance_s then running.duration_s
            when running.used_through_s - running.duration_s >= running.allowance_s then 0
            else running.allowance_s - (running.used_through_s - running.duration_s)
        end as covered_s
    from (
        select
            usage.record_id,
            usage.served_msisdn,
            usage.billing_month,
            usage.duration_s,
            usage.cost,
            {%- if window_months %}
            periods.allowance_s,
            {%- else %}
            {{ prorated_included_seconds('periods.included_national_minutes', 'usage.billing_month',
                'periods.valid_from', 'periods.valid_to') }} as allowance_s,
            {%- endif %}
            sum(usage.duration_s) over (
                partition by usage.served_msisdn, usage.billing_month, periods.valid_from
                order by usage.start_time, usage.record_id
                rows between unbounded preceding and current row
            ) as used_through_s
        from {{ ref('int_rated_usage') }} as usage
        inner join (
            -- the periods of invoiced plans with included minutes; with a billing window, per month
            -- of it, their days in the month and included seconds worked out once per period and
            -- month, not per call (the sort under the running sum then carries one column, not
            -- the period's dates and plan; at 10,000,000 rated CDRs, the allowance query's median:
            -- 5.1 s before periods, 6.0 s worked out per call, 5.0 s so)
            select
                periods.msisdn,
                periods.valid_from,
                {%- if window_months %}
                months.billing_month,
                case when periods.valid_from > months.billing_month then periods.valid_from
                    else months.billing_month end as first_day,
                case when periods.valid_to is null or periods.valid_to > {{ month_last_day('months.billing_month') }}
                    then {{ month_last_day('months.billing_month') }} else periods.valid_to end as last_day,
                {{ prorated_included_seconds('plans.included_national_minutes', 'months.billing_month',
                    'periods.valid_from', 'periods.valid_to') }} as allowance_s
                {%- else %}
                periods.valid_to,
                plans.included_national_minutes
                {%- endif %}
            from {{ ref('stg_reference__subscriber_periods') }} as periods
            inner join {{ ref('plan_catalogue') }} as plans
                on plans.plan_name = periods.plan_name
            {%- if window_months %}
            inner join (
                {%- for month in window_months %}
                select {{ date_literal(month) }} as billing_month{% if not loop.last %} union all{% endif %}
                {%- endfor %}
            ) as months
                on {{ period_overlaps_month('months.billing_month', 'periods.valid_from', 'periods.valid_to') }}
            {%- endif %}
            where plans.included_national_minutes > 0
                and plans.billing_type in ('postpaid', 'business')
        ) as periods
            on periods.msisdn = usage.served_msisdn
            {%- if window_months %}
            -- the days of the period in the month (no equality on the month: PostgreSQL would
            -- then estimate the calls of a month as a handful and nest the loop)
            and usage.rating_day >= periods.first_day and usage.rating_day <= periods.last_day
            {%- else %}
            and {{ period_in_force('usage.rating_day', 'periods.valid_from', 'periods.valid_to') }}
            {%- endif %}
        where {{ is_national_call('usage.') }}
            {{ billing_window('usage.rating_day') }}  {#- the month's days: its rating partitions only #}
    ) as running
) as covered
