-- The allowance rule: a plan's included national minutes are consumed by the month's national
-- calls in order of start time (then record id). A call wholly inside the allowance is credited
-- its rated price; the call that exhausts it, the covered share of its price (covered seconds /
-- duration, kept to 12 decimals: the bill rounds the month's credit once, to the cent); later
-- calls nothing. The rated list price stays in rating_cdrs: the bill shows the credit as its own line.
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
            cast(plans.included_national_minutes as bigint) * 60 as allowance_s,
            sum(usage.duration_s) over (
                partition by usage.served_msisdn, usage.billing_month
                order by usage.start_time, usage.record_id
                rows between unbounded preceding and current row
            ) as used_through_s
        from {{ ref('int_rated_usage') }} as usage
        inner join {{ ref('stg_reference__subscribers') }} as subscribers
            on subscribers.msisdn = usage.served_msisdn
        inner join {{ ref('plan_catalogue') }} as plans
            on plans.plan_name = subscribers.plan_name
        where {{ is_national_call('usage.') }}
            and plans.included_national_minutes > 0
            {{ billing_window('usage.rating_day') }}  {#- the month's days: its rating partitions only #}
    ) as running
) as covered
