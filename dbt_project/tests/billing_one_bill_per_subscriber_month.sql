-- No subscriber is billed twice in a month.
select billing_month, msisdn, count(*) as bills
from {{ ref('billing_cdrs') }}
where 1 = 1 {{ billing_window('billing_month') }}
group by billing_month, msisdn
having count(*) > 1
