-- Usage and revenue per subscriber and billing month, from the bills: top customers by usage and
-- by revenue. The operator comes through dim_subscriber. A subscriber who moved between prepaid
-- and postpaid within a month has two bills (a statement and an invoice): their sum.
with bills as (

    select
        billing_month,
        msisdn,
        sum(voice_calls) as voice_calls,
        sum(total_call_duration_s) as total_call_duration_s,
        sum(sms_count) as sms_count,
        sum(data_sessions) as data_sessions,
        sum(data_volume_bytes) as data_volume_bytes,
        sum(usage_amount) as usage_amount,
        sum(amount_before_tax) as amount_before_tax,
        sum(total_amount) as total_amount
    from {{ ref('billing_cdrs') }}
    group by billing_month, msisdn

),

subscribers as (

    select * from {{ ref('dim_subscriber') }}

),

final as (

    select
        {{ date_key('bills.billing_month') }} as month_date_key,
        subscribers.subscriber_key,
        cast(bills.voice_calls as bigint) as voice_calls,
        cast(bills.total_call_duration_s as bigint) as voice_seconds,
        cast(bills.sms_count as bigint) as sms_count,
        cast(bills.data_sessions as bigint) as data_sessions,
        cast(bills.data_volume_bytes as bigint) as data_volume_bytes,
        cast(bills.usage_amount as decimal(18,4)) as usage_amount,
        cast(bills.amount_before_tax as decimal(18,4)) as amount_before_tax,
        cast(bills.total_amount as decimal(18,4)) as total_amount
    from bills
    inner join subscribers on subscribers.msisdn = bills.msisdn

)

select * from final
