-- Rejected messages per local day mediation committed them and reason code (a message with
-- several reasons counts under each). Duplicates are counted in fct_revenue_assurance_daily.
with reasons as (

    select * from {{ ref('stg_mediation__ledger_reasons') }}

),

ledger as (

    select * from {{ ref('stg_mediation__ledger') }}

),

final as (

    select
        {{ date_key('ledger.committed_day') }} as date_key,
        cast(reasons.reason as varchar(32)) as reason,
        cast(sum(reasons.records) as bigint) as records
    from reasons
    inner join ledger on ledger.query_id = reasons.query_id and ledger.batch_id = reasons.batch_id
    group by {{ date_key('ledger.committed_day') }}, reasons.reason

)

select * from final
