{#- Pre-hook of the billing models: a run replaces its months whole. delete+insert alone would
    leave a month's rows that the new run no longer produces (a subscriber whose usage went). -#}
{% macro replace_billing_window() -%}
    {%- if is_incremental() -%}
        delete from {{ this }} where 1 = 1 {{ billing_window('billing_month') }}
    {%- else -%}
        select 1 as nothing_to_replace
    {%- endif -%}
{%- endmacro %}
