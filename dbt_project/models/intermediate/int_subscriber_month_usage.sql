-- Per subscriber and billing month (in the billing window): what was used and its rated price,
-- per usage type, and the allowance consumed. Money stays exact here (decimal(18,6)): the bill
-- rounds each line once. The month's rated CDRs are aggregated first, then joined to the
-- allowance (a row per subscriber and month), so no join or sort runs over every CDR.
select
    usage.billing_month,
    usage.served_msisdn,
    usage.voice_calls,
    usage.sms_count,
    usage.data_sessions,
    usage.total_call_duration_s,
    usage.longest_call_duration_s,
    usage.data_volume_bytes,
    usage.voice_cost,
    usage.sms_cost,
    usage.data_cost,
    coalesce(allowance.allowance_seconds_used, 0) as allowance_seconds_used,
    coalesce(allowance.allowance_credit, 0) as allowance_credit
from (
    -- per day first, then per month: the month of each CDR's day is then worked out once per
    -- subscriber and day, not once per CDR
    select
        {{ month_start('rating_day') }} as billing_month,
        served_msisdn,
        cast(sum(voice_calls) as bigint) as voice_calls,
        cast(sum(sms_count) as bigint) as sms_count,
        cast(sum(data_sessions) as bigint) as data_sessions,
        cast(sum(total_call_duration_s) as bigint) as total_call_duration_s,
        cast(max(longest_call_duration_s) as bigint) as longest_call_duration_s,
        cast(sum(data_volume_bytes) as bigint) as data_volume_bytes,
        sum(voice_cost) as voice_cost,
        sum(sms_cost) as sms_cost,
        sum(data_cost) as data_cost
    from (
        select
            rating_day,
            served_msisdn,
            sum(case when record_type = 'voice' then 1 else 0 end) as voice_calls,
            sum(case when record_type = 'sms' then 1 else 0 end) as sms_count,
            sum(case when record_type = 'data' then 1 else 0 end) as data_sessions,
            sum(case when record_type = 'voice' then duration_s else 0 end) as total_call_duration_s,
            max(case when record_type = 'voice' then duration_s else 0 end) as longest_call_duration_s,
            sum(case when record_type = 'data' then data_volume_bytes else 0 end) as data_volume_bytes,
            sum(case when record_type = 'voice' then cost else 0 end) as voice_cost,
            sum(case when record_type = 'sms' then cost else 0 end) as sms_cost,
            sum(case when record_type = 'data' then cost else 0 end) as data_cost
        from {{ ref('int_rated_usage') }}
        where 1 = 1
            {{ billing_window('rating_day') }}  {#- the month's days: its rating partitions only #}
        group by rating_day, served_msisdn
    ) as daily
    group by {{ month_start('rating_day') }}, served_msisdn
) as usage
left join {{ ref('allowance_usage') }} as allowance
    on allowance.msisdn = usage.served_msisdn
    and allowance.billing_month = usage.billing_month
