-- Revenue assurance per local day mediation committed its batches: every message of raw-cdrs
-- that day and where it ended. A leak shows as a gap between columns:
--   messages_received = clean + rejected + duplicates         (mediation)
--   clean = rated + in_suspense + unrated, unrated = 0        (rating)
--   rated = billed, rated_amount = billed_amount              (billing)
with ledger as (

    select * from {{ ref('stg_mediation__ledger') }}

),

mediated as (

    select
        committed_day,
        cast(sum(rows_in) as bigint) as messages_received,
        cast(sum(clean) as bigint) as clean,
        cast(sum(rejected) as bigint) as rejected,
        cast(sum(duplicates) as bigint) as duplicates
    from ledger
    group by committed_day

),

clean_outcomes as (

    select
        ledger.committed_day,
        cast(sum(case when rated.record_id is not null then 1 else 0 end) as bigint) as rated,
        cast(sum(case when suspense.record_id is not null then 1 else 0 end) as bigint) as in_suspense,
        cast(sum(case when bills.msisdn is not null then 1 else 0 end) as bigint) as billed,
        sum(coalesce(rated.cost, 0)) as rated_amount,
        sum(case when bills.msisdn is not null then rated.cost else 0 end) as billed_amount
    from {{ ref('stg_mediation__clean_cdrs') }} as clean
    inner join ledger
        on ledger.query_id = clean.query_id and ledger.batch_id = clean.batch_id
    left join {{ ref('stg_rating__rated_cdrs') }} as rated
        on rated.record_id = clean.record_id
    left join {{ ref('stg_rating__suspense') }} as suspense
        on suspense.record_id = clean.record_id
    left join {{ ref('billing_cdrs') }} as bills
        on bills.msisdn = rated.served_msisdn
        and bills.billing_month = {{ month_start('rated.rating_day') }}
    group by ledger.committed_day

),

final as (

    select
        {{ date_key('mediated.committed_day') }} as date_key,
        mediated.messages_received,
        mediated.clean,
        mediated.rejected,
        mediated.duplicates,
        coalesce(clean_outcomes.rated, 0) as rated,
        coalesce(clean_outcomes.in_suspense, 0) as in_suspense,
        mediated.clean - coalesce(clean_outcomes.rated, 0) - coalesce(clean_outcomes.in_suspense, 0) as unrated,
        coalesce(clean_outcomes.billed, 0) as billed,
        cast(coalesce(clean_outcomes.rated_amount, 0) as decimal(18,4)) as rated_amount,
        cast(coalesce(clean_outcomes.billed_amount, 0) as decimal(18,4)) as billed_amount
    from mediated
    left join clean_outcomes on clean_outcomes.committed_day = mediated.committed_day

)

select * from final
