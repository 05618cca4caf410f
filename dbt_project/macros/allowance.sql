{#- A national call: an outgoing call made at home (not roaming) to an on-net, off-net or fixed
    number, what a plan's included minutes cover; a call made abroad is priced, never covered. A predicate on plain columns (not a flag column) so that PostgreSQL estimates
    how many rows it keeps: the allowance's join is then planned for millions of calls, not
    thousands. `prefix`: the relation's alias and a dot, or nothing. -#}
{% macro is_national_call(prefix='') -%}
    ({{ prefix }}record_type = 'voice' and {{ prefix }}direction = 'outgoing' and {{ prefix }}roaming = 0
        and {{ prefix }}destination_class in ('on_net', 'off_net', 'fixed'))
{%- endmacro %}
