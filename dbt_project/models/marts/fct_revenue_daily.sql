-- Rated revenue (tariff list price, before allowance and VAT) by local day, operator, usage type,
-- destination class and technology.
with usage as (

    select * from {{ ref('int_rated_usage') }}

),

operators as (

    select * from {{ ref('dim_operator') }}

),

-- grouped on the plain columns first: the date key and the operator key are then worked out
-- once per group, not once per CDR
daily as (

    select
        rating_day,
        operator_id,
        record_type,
        coalesce(destination_class, 'none') as destination_class,
        technology,
        count(*) as records,
        sum(case when record_type = 'voice' then duration_s else 0 end) as voice_seconds,
        sum(case when record_type = 'sms' then 1 else 0 end) as sms_count,
        sum(case when record_type = 'data' then data_volume_bytes else 0 end) as data_volume_bytes,
        sum(cost) as revenue
    from usage
    group by rating_day, operator_id, record_type, coalesce(destination_class, 'none'), technology

),

final as (

    select
        {{ date_key('daily.rating_day') }} as date_key,
        operators.operator_key,
        daily.record_type as usage_type,
        daily.destination_class,
        daily.technology,
        cast(daily.records as bigint) as records,
        cast(daily.voice_seconds as bigint) as voice_seconds,
        cast(daily.sms_count as bigint) as sms_count,
        cast(daily.data_volume_bytes as bigint) as data_volume_bytes,
        cast(daily.revenue as decimal(18,4)) as revenue
    from daily
    inner join operators on operators.operator_id = daily.operator_id

)

select * from final
