-- Rated revenue (tariff list price, before allowance and VAT) by local day, operator, usage type,
-- destination class and technology.
with usage as (

    select * from {{ ref('int_rated_usage') }}

),

operators as (

    select * from {{ ref('dim_operator') }}

),

final as (

    select
        {{ date_key('usage.rating_day') }} as date_key,
        operators.operator_key,
        usage.record_type as usage_type,
        coalesce(usage.destination_class, 'none') as destination_class,
        usage.technology,
        cast(count(*) as bigint) as records,
        cast(sum(case when usage.record_type = 'voice' then usage.duration_s else 0 end) as bigint) as voice_seconds,
        cast(sum(case when usage.record_type = 'sms' then 1 else 0 end) as bigint) as sms_count,
        cast(sum(case when usage.record_type = 'data' then usage.data_volume_bytes else 0 end) as bigint)
            as data_volume_bytes,
        cast(sum(usage.cost) as decimal(18,4)) as revenue
    from usage
    inner join operators on operators.operator_id = usage.operator_id
    group by
        {{ date_key('usage.rating_day') }},
        operators.operator_key,
        usage.record_type,
        coalesce(usage.destination_class, 'none'),
        usage.technology

)

select * from final
