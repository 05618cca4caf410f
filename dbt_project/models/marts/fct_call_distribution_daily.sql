-- Voice calls per local day and operator by destination class (on-net, off-net, fixed,
-- international) and direction: calls, seconds, minutes and rated revenue.
with calls as (

    select * from {{ ref('int_rated_usage') }}
    where record_type = 'voice'

),

operators as (

    select * from {{ ref('dim_operator') }}

),

final as (

    select
        {{ date_key('calls.rating_day') }} as date_key,
        operators.operator_key,
        calls.destination_class,
        calls.direction,
        cast(count(*) as bigint) as calls,
        cast(sum(calls.duration_s) as bigint) as call_seconds,
        cast(round(cast(sum(calls.duration_s) as decimal(18,4)) / 60, 4) as decimal(18,4)) as minutes,
        cast(sum(calls.cost) as decimal(18,4)) as revenue
    from calls
    inner join operators on operators.operator_id = calls.operator_id
    group by {{ date_key('calls.rating_day') }}, operators.operator_key, calls.destination_class, calls.direction

)

select * from final
