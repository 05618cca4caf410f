-- One row per day, whole months, from the earliest to the latest day any mart refers to (and at
-- least var calendar_start .. calendar_end), built from digits: no recursive CTE, no generator
-- function, the same SQL on both engines. 1900-01-01 was a Monday: the ISO weekday counts from it.
with digits as (

    select 0 as digit union all select 1 union all select 2 union all select 3 union all select 4
    union all select 5 union all select 6 union all select 7 union all select 8 union all select 9

),

day_offsets as (

    select ones.digit + 10 * tens.digit + 100 * hundreds.digit + 1000 * thousands.digit as day_offset
    from digits as ones
    cross join digits as tens
    cross join digits as hundreds
    cross join digits as thousands

),

extents as (

    select min(rating_day) as first_day, max(rating_day) as last_day from {{ ref('stg_rating__rated_cdrs') }}
    union all
    select min(rating_day), max(rating_day) from {{ ref('stg_rating__suspense') }}
    union all
    select min(committed_day), max(committed_day) from {{ ref('stg_mediation__ledger') }}
    union all
    select {{ date_literal(var('calendar_start')) }}, {{ date_literal(var('calendar_end')) }}

),

bounds as (

    select
        {{ month_start('min(first_day)') }} as first_day,
        {{ add_days(-1, dbt.dateadd('month', 1, month_start('max(last_day)'))) }} as last_day
    from extents

),

days as (

    select {{ add_days('day_offsets.day_offset', 'bounds.first_day') }} as calendar_date
    from day_offsets
    cross join bounds
    where day_offsets.day_offset <= {{ dbt.datediff('bounds.first_day', 'bounds.last_day', 'day') }}

),

parts as (

    select
        calendar_date,
        {{ date_part_int('year', 'calendar_date') }} as year_number,
        {{ date_part_int('month', 'calendar_date') }} as month_number,
        {{ date_part_int('day', 'calendar_date') }} as day_number,
        cast({{ dbt.datediff(date_literal('1900-01-01'), 'calendar_date', 'day') }} % 7 + 1 as int) as iso_day_of_week
    from days

),

final as (

    select
        cast(year_number * 10000 + month_number * 100 + day_number as int) as date_key,
        calendar_date,
        year_number as year,
        cast((month_number + 2) / 3 as int) as quarter,
        month_number as month,
        cast(case month_number
            when 1 then 'January' when 2 then 'February' when 3 then 'March' when 4 then 'April'
            when 5 then 'May' when 6 then 'June' when 7 then 'July' when 8 then 'August'
            when 9 then 'September' when 10 then 'October' when 11 then 'November' else 'December'
        end as varchar(9)) as month_name,
        cast({{ dbt.concat([
            "cast(year_number as varchar(4))",
            "'-'",
            dbt.right(dbt.concat(["'0'", "cast(month_number as varchar(2))"]), 2),
        ]) }} as varchar(7)) as year_month,
        {{ month_start('calendar_date') }} as month_start_date,
        day_number as day_of_month,
        iso_day_of_week,
        cast(case iso_day_of_week
            when 1 then 'Monday' when 2 then 'Tuesday' when 3 then 'Wednesday' when 4 then 'Thursday'
            when 5 then 'Friday' when 6 then 'Saturday' else 'Sunday'
        end as varchar(9)) as day_name,
        case when iso_day_of_week >= 6 then 1 else 0 end as is_weekend
    from parts

)

select * from final
