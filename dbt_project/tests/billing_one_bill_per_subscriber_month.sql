-- No subscriber is billed twice in a month on the same kind of document (a statement and an
-- invoice in one month are a move between prepaid and postpaid: two bills, one of each).
select billing_month, msisdn, document_type, count(*) as bills
from {{ ref('billing_cdrs') }}
where 1 = 1 {{ billing_window('billing_month') }}
group by billing_month, msisdn, document_type
having count(*) > 1
