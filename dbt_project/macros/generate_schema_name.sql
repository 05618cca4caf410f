{#- A model or seed with a custom schema goes to exactly that schema (tariffs, billing, marts),
    not to "<target schema>_<custom>": the warehouse layout is the same on every target. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro %}
