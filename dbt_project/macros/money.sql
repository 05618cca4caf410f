{#- Money of a bill: MAD with 2 decimals, rounded half up (half away from zero, the same on
    PostgreSQL and SQL Server for the non-negative amounts billed) once per bill line. -#}
{% macro to_bill_amount(expression) -%}
    cast(round({{ expression }}, 2) as decimal(18,2))
{%- endmacro %}
