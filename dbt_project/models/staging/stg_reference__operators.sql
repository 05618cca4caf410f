-- the national operators: the numbering plan's number blocks name them
select distinct
    operator_id,
    operator_name
from {{ source('reference', 'numbering_plan') }}
where operator_id is not null
