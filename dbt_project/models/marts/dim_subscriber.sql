with subscribers as (

    select * from {{ ref('stg_reference__subscribers') }}

),

plans as (

    select * from {{ ref('plan_catalogue') }}

),

operators as (

    select * from {{ ref('dim_operator') }}

),

final as (

    select
        cast(row_number() over (order by subscribers.msisdn) as int) as subscriber_key,
        subscribers.msisdn,
        operators.operator_key,
        subscribers.segment,
        plans.plan_id,
        subscribers.plan_name,
        coalesce(plans.billing_type, 'unknown') as billing_type,
        subscribers.region
    from subscribers
    inner join operators on operators.operator_id = subscribers.operator_id
    left join plans on plans.plan_name = subscribers.plan_name

)

select * from final
