-- Revenue assurance per local day mediation committed its batches: every message of raw-cdrs
-- that day and where it ended. A leak shows as a gap between columns:
--   messages_received = clean + rejected + duplicates         (mediation)
--   clean = rated + in_suspense + unrated, unrated = 0        (rating)
--   rated = billed, rated_amount = billed_amount              (billing)
with ledger as (

    select * from {{ ref('stg_mediation__ledger') }}

),

clean_outcomes as (

    -- per mediation batch: what became of its clean CDRs. Grouped by batch before meeting the
    -- ledger, so the ledger is read once: PostgreSQL runs a CTE read twice in the leader alone,
    -- and this join of every clean CDR to its rating then has no parallel plan.
    select
        clean.query_id,
        clean.batch_id,
        cast(sum(case when rated.record_id is not null then 1 else 0 end) as bigint) as rated,
        cast(sum(case when suspense.record_id is not null then 1 else 0 end) as bigint) as in_suspense,
        cast(sum(case when bills.msisdn is not null then 1 else 0 end) as bigint) as billed,
        sum(coalesce(rated.cost, 0)) as rated_amount,
        sum(case when bills.msisdn is not null then rated.cost else 0 end) as billed_amount
    from {{ ref('stg_mediation__clean_cdrs') }} as clean
    left join {{ ref('stg_rating__rated_cdrs') }} as rated
        on rated.record_id = clean.record_id
    left join {{ ref('stg_rating__suspense') }} as suspense
        on suspense.record_id = clean.record_id
    left join {{ ref('billing_cdrs') }} as bills
        on bills.msisdn = rated.served_msisdn
        and bills.billing_month = {{ month_start('rated.rating_day') }}
    group by clean.query_id, clean.batch_id

),

days as (

    select
        ledger.committed_day,
        cast(sum(ledger.rows_in) as bigint) as messages_received,
        cast(sum(ledger.clean) as bigint) as clean,
        cast(sum(ledger.rejected) as bigint) as rejected,
        cast(sum(ledger.duplicates) as bigint) as duplicates,
        cast(sum(coalesce(clean_outcomes.rated, 0)) as bigint) as rated,
        cast(sum(coalesce(clean_outcomes.in_suspense, 0)) as bigint) as in_suspense,
        cast(sum(coalesce(clean_outcomes.billed, 0)) as bigint) as billed,
        sum(coalesce(clean_outcomes.rated_amount, 0)) as rated_amount,
        sum(coalesce(clean_outcomes.billed_amount, 0)) as billed_amount
    from ledger
    left join clean_outcomes
        on clean_outcomes.query_id = ledger.query_id and clean_outcomes.batch_id = ledger.batch_id
    group by ledger.committed_day

),

final as (

    select
        {{ date_key('committed_day') }} as date_key,
        messages_received,
        clean,
        rejected,
        duplicates,
        rated,
        in_suspense,
        clean - rated - in_suspense as unrated,
        billed,
        cast(rated_amount as decimal(18,4)) as rated_amount,
        cast(billed_amount as decimal(18,4)) as billed_amount
    from days

)

select * from final
