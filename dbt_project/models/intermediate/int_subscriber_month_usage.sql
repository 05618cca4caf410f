-- Per subscriber and billing month (in the billing window): what was used and its rated price,
-- per usage type, and the allowance consumed. Money stays exact here (decimal(18,6)): the bill
-- rounds each line once.
select
    usage.billing_month,
    usage.served_msisdn,
    cast(sum(case when usage.record_type = 'voice' then 1 else 0 end) as bigint) as voice_calls,
    cast(sum(case when usage.record_type = 'sms' then 1 else 0 end) as bigint) as sms_count,
    cast(sum(case when usage.record_type = 'data' then 1 else 0 end) as bigint) as data_sessions,
    cast(sum(case when usage.record_type = 'voice' then usage.duration_s else 0 end) as bigint)
        as total_call_duration_s,
    cast(max(case when usage.record_type = 'voice' then usage.duration_s else 0 end) as bigint)
        as longest_call_duration_s,
    cast(sum(case when usage.record_type = 'data' then usage.data_volume_bytes else 0 end) as bigint)
        as data_volume_bytes,
    sum(case when usage.record_type = 'voice' then usage.cost else 0 end) as voice_cost,
    sum(case when usage.record_type = 'sms' then usage.cost else 0 end) as sms_cost,
    sum(case when usage.record_type = 'data' then usage.cost else 0 end) as data_cost,
    cast(coalesce(max(allowance.covered_s_total), 0) as bigint) as allowance_seconds_used,
    coalesce(max(allowance.credit_total), 0) as allowance_credit
from {{ ref('int_rated_usage') }} as usage
left join (
    select
        served_msisdn,
        billing_month,
        sum(covered_s) as covered_s_total,
        sum(allowance_credit) as credit_total
    from {{ ref('int_allowance_calls') }}
    group by served_msisdn, billing_month
) as allowance
    on allowance.served_msisdn = usage.served_msisdn
    and allowance.billing_month = usage.billing_month
where 1 = 1
    {{ billing_window('usage.rating_day') }}  {#- the month's days: its rating partitions only #}
group by usage.billing_month, usage.served_msisdn
