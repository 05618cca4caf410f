-- Voice calls per local day and operator by destination class (on-net, off-net, fixed,
-- international) and direction: calls, seconds, minutes and rated revenue.
with calls as (

    select * from {{ ref('int_rated_usage') }}
    where record_type = 'voice'

),

operators as (

    select * from {{ ref('dim_operator') }}

),

-- grouped on the plain columns first: the keys are then worked out once per group
daily as (

    select
        rating_day,
        operator_id,
        destination_class,
        direction,
        count(*) as calls,
        sum(duration_s) as call_seconds,
        sum(cost) as revenue
    from calls
    group by rating_day, operator_id, destination_class, direction

),

final as (

    select
        {{ date_key('daily.rating_day') }} as date_key,
        operators.operator_key,
        daily.destination_class,
        daily.direction,
        cast(daily.calls as bigint) as calls,
        cast(daily.call_seconds as bigint) as call_seconds,
        cast(round(cast(daily.call_seconds as decimal(18,4)) / 60, 4) as decimal(18,4)) as minutes,
        cast(daily.revenue as decimal(18,4)) as revenue
    from daily
    inner join operators on operators.operator_id = daily.operator_id

)

select * from final
