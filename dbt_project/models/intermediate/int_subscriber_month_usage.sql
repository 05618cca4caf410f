-- Per subscriber, billing month and document (in the billing window): what was used and its rated
-- price, per usage type, and the allowance consumed. Each day's usage goes on the document of the
-- plan in force that day (stg_reference__subscriber_periods): an invoice under a postpaid or
-- business plan, a usage statement under a prepaid one or on a day no period covers. Money stays
-- exact here (decimal(18,6)): the bill rounds each line once. The month's rated CDRs are
-- aggregated per subscriber and day first, then joined to the plan periods (a row per subscriber
-- and day, not per CDR), then per month, then to the allowance (a row per subscriber and month,
-- on the invoice: only invoiced plans have one), so no join or sort runs over every CDR.
select
    usage.billing_month,
    usage.served_msisdn,
    cast(usage.document_type as varchar(16)) as document_type,
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
    select
        {{ month_start('rating_day') }} as billing_month,
        served_msisdn,
        document_type,
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
        -- each subscriber's day under the plan in force that day
        select
            daily.*,
            {{ document_type_of('plans.billing_type') }} as document_type
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
        left join {{ ref('stg_reference__subscriber_periods') }} as periods
            on periods.msisdn = daily.served_msisdn
            and {{ period_in_force('daily.rating_day', 'periods.valid_from', 'periods.valid_to') }}
        left join {{ ref('plan_catalogue') }} as plans
            on plans.plan_name = periods.plan_name
    ) as daily_documents
    group by {{ month_start('rating_day') }}, served_msisdn, document_type
) as usage
left join {{ ref('allowance_usage') }} as allowance
    on allowance.msisdn = usage.served_msisdn
    and allowance.billing_month = usage.billing_month
    and usage.document_type = 'invoice'
