with operators as (

    select * from {{ ref('stg_reference__operators') }}

),

final as (

    select
        cast(row_number() over (order by operator_id) as int) as operator_key,
        operator_id,
        operator_name
    from operators

)

select * from final
