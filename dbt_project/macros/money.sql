{#- Money of a bill: MAD with 2 decimals, rounded half up (half away from zero, the same on
    PostgreSQL and SQL Server for the non-negative amounts billed) once per bill line. -#}
{% macro to_bill_amount(expression) -%}
    cast(round({{ expression }}, 2) as decimal(18,2))
{%- endmacro %}


{#- The VAT rate of a bill, or the build fails naming the month: a month with no rate in force
    must not lose its bills silently. The failure is a conversion error whose message carries the
    text (PostgreSQL and SQL Server both quote the value they could not convert). -#}
{% macro vat_rate_or_fail(rate, month) -%}
    case when {{ rate }} is null
        then cast(cast({{ dbt.concat(["'no VAT rate in force for billing month '", "cast(" ~ month ~ " as varchar(10))"]) }} as int) as decimal(5,4))
        else {{ rate }} end
{%- endmacro %}
