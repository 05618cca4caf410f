{#- The BI tool's role (var bi_role, default cdr_bi) may select the marts and nothing else: the
    marts schema and every table in it, present and future. Run at the end of every dbt invocation
    (on-run-end); a mart dbt rebuilds (a new table swapped in) is readable at once, with no window
    of permission errors: on PostgreSQL the default privileges of the role dbt connects as grant it
    when the table is created, on SQL Server the grant is on the schema. On PostgreSQL the role is
    a login the application's role may not create: the local stack creates it with its password
    (`cdr stack up`), elsewhere the DBA. On SQL Server it is a database role, created if missing
    (that needs CREATE ROLE; the DBA may create it instead), the BI tool's user a member. -#}
{% macro grant_bi_access() -%}
    {{ return(adapter.dispatch('grant_bi_access')()) }}
{%- endmacro %}

{% macro postgres__grant_bi_access() -%}
    {%- set role = var('bi_role') -%}
    {%- set marts = var('marts_schema', env_var('CDR_MARTS_SCHEMA', 'marts')) -%}
    do $$ begin
        if not exists (select 1 from pg_roles where rolname = '{{ role }}') then
            raise exception 'the BI role {{ role }} does not exist: `cdr stack up` creates it locally, the DBA elsewhere';
        end if;
    end $$;
    create schema if not exists {{ marts }};
    grant usage on schema {{ marts }} to {{ role }};
    grant select on all tables in schema {{ marts }} to {{ role }};
    alter default privileges for role {{ adapter.quote(target.user) }} in schema {{ marts }} grant select on tables to {{ role }};
{%- endmacro %}

{% macro sqlserver__grant_bi_access() -%}
    {%- set role = var('bi_role') -%}
    {%- set marts = var('marts_schema', env_var('CDR_MARTS_SCHEMA', 'marts')) -%}
    if database_principal_id(N'{{ role }}') is null exec(N'create role {{ role }}');
    if schema_id(N'{{ marts }}') is null exec(N'create schema {{ marts }}');
    grant select on schema::{{ marts }} to {{ role }};
{%- endmacro %}

{#- The same grants outside a run: `dbt run-operation apply_bi_access` (a new marts schema, a new
    BI role, a check of the macro on a live warehouse). -#}
{% macro apply_bi_access() -%}
    {% do run_query(grant_bi_access()) %}
    {#- dbt-postgres opened a transaction that run-operation would roll back; SQL Server's
        connections autocommit -#}
    {% if target.type == 'postgres' %}{% do run_query('commit') %}{% endif %}
{%- endmacro %}
