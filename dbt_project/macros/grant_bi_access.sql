{#- The BI tool's role (var bi_role, default cdr_bi) may select the marts and nothing else: it is
    created if missing, given the marts schema (and every table dbt rebuilds there), no other. Run
    at the end of every dbt invocation, so a rebuilt mart table is readable again at once. -#}
{% macro grant_bi_access() -%}
    {{ return(adapter.dispatch('grant_bi_access')()) }}
{%- endmacro %}

{% macro postgres__grant_bi_access() -%}
    {%- set role = var('bi_role') -%}
    {%- set marts = var('marts_schema', env_var('CDR_MARTS_SCHEMA', 'marts')) -%}
    do $$ begin
        if not exists (select 1 from pg_roles where rolname = '{{ role }}') then
            create role {{ role }} login;
        end if;
    end $$;
    create schema if not exists {{ marts }};
    grant usage on schema {{ marts }} to {{ role }};
    grant select on all tables in schema {{ marts }} to {{ role }};
{%- endmacro %}

{% macro sqlserver__grant_bi_access() -%}
    {%- set role = var('bi_role') -%}
    {%- set marts = var('marts_schema', env_var('CDR_MARTS_SCHEMA', 'marts')) -%}
    if database_principal_id(N'{{ role }}') is null exec(N'create role {{ role }}');
    if schema_id(N'{{ marts }}') is null exec(N'create schema {{ marts }}');
    grant select on schema::{{ marts }} to {{ role }};
{%- endmacro %}
