-- Usage and revenue per subscriber and billing month, from the bills: top customers by usage and
-- by revenue. The operator comes through dim_subscriber.
with bills as (

    select * from {{ ref('billing_cdrs') }}

),

subscribers as (

    select * from {{ ref('dim_subscriber') }}

),

final as (

    select
        {{ date_key('bills.billing_month') }} as month_date_key,
        subscribers.subscriber_key,
        bills.voice_calls,
        bills.total_call_duration_s as voice_seconds,
        bills.sms_count,
        bills.data_sessions,
        bills.data_volume_bytes,
        cast(bills.usage_amount as decimal(18,4)) as usage_amount,
        cast(bills.amount_before_tax as decimal(18,4)) as amount_before_tax,
        cast(bills.total_amount as decimal(18,4)) as total_amount
    from bills
    inner join subscribers on subscribers.msisdn = bills.msisdn

)

select * from final
