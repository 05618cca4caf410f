-- The warehouse's database, logins and schemas on SQL Server, run once as sa (and again after a
-- password changes: every step is idempotent). docker-compose.yml's sqlserver-init runs it at each
-- `docker compose up`; by hand, with sqlcmd's scripting variables given as -v NAME="value" or as
-- environment variables of the same names:
--
--   sqlcmd -S <server> -U sa -b -i deploy/sqlserver/create_logins.sql \
--     -v CDR_WAREHOUSE_DB=cdr_warehouse CDR_WAREHOUSE_USER=cdr_app CDR_WAREHOUSE_PASSWORD="..." \
--        CDR_BI_ROLE=cdr_bi CDR_BI_PASSWORD="..." CDR_MEDIATION_SCHEMA=mediation \
--        CDR_RATING_SCHEMA=rating CDR_TARIFF_SCHEMA=tariffs CDR_BILLING_SCHEMA=billing \
--        CDR_MARTS_SCHEMA=marts
--
-- What it makes:
--   * the database CDR_WAREHOUSE_DB;
--   * the application's login CDR_WAREHOUSE_USER (what the Dagster containers connect as; never
--     sa), owner of the project's schemas - reference, and the schemas of CDR_MEDIATION_SCHEMA,
--     CDR_RATING_SCHEMA, CDR_TARIFF_SCHEMA, CDR_BILLING_SCHEMA, CDR_MARTS_SCHEMA
--     (cdr_platform.lib.settings: WAREHOUSE_SCHEMAS and the tariff schema) - with the right to
--     create tables, views, procedures and functions, and no other right in the database;
--   * the BI tool's login CDR_BI_ROLE (dbt's var bi_role), which may select the marts schema and
--     nothing else: GRANT SELECT ON SCHEMA::marts. dbt grants it again after every run
--     (dbt_project/macros/grant_bi_access.sql), as the marts' owner.
-- The passwords are written into SQL string literals: they must not contain a single quote.
-- SQL Server's password policy applies (CHECK_POLICY): 8+ characters of three kinds.
:on error exit
SET NOCOUNT ON;
GO

IF DB_ID(N'$(CDR_WAREHOUSE_DB)') IS NULL
    CREATE DATABASE [$(CDR_WAREHOUSE_DB)];
GO

-- the logins, their passwords set again on every run (how they are rotated)
IF SUSER_ID(N'$(CDR_WAREHOUSE_USER)') IS NULL
    CREATE LOGIN [$(CDR_WAREHOUSE_USER)]
        WITH PASSWORD = N'$(CDR_WAREHOUSE_PASSWORD)', DEFAULT_DATABASE = [$(CDR_WAREHOUSE_DB)], CHECK_POLICY = ON;
ELSE
    ALTER LOGIN [$(CDR_WAREHOUSE_USER)] WITH PASSWORD = N'$(CDR_WAREHOUSE_PASSWORD)';

IF SUSER_ID(N'$(CDR_BI_ROLE)') IS NULL
    CREATE LOGIN [$(CDR_BI_ROLE)]
        WITH PASSWORD = N'$(CDR_BI_PASSWORD)', DEFAULT_DATABASE = [$(CDR_WAREHOUSE_DB)], CHECK_POLICY = ON;
ELSE
    ALTER LOGIN [$(CDR_BI_ROLE)] WITH PASSWORD = N'$(CDR_BI_PASSWORD)';
GO

USE [$(CDR_WAREHOUSE_DB)];
GO

IF USER_ID(N'$(CDR_WAREHOUSE_USER)') IS NULL
    CREATE USER [$(CDR_WAREHOUSE_USER)] FOR LOGIN [$(CDR_WAREHOUSE_USER)] WITH DEFAULT_SCHEMA = [$(CDR_MARTS_SCHEMA)];
IF USER_ID(N'$(CDR_BI_ROLE)') IS NULL
    CREATE USER [$(CDR_BI_ROLE)] FOR LOGIN [$(CDR_BI_ROLE)] WITH DEFAULT_SCHEMA = [$(CDR_MARTS_SCHEMA)];
GO

-- the project's schemas, owned by the application's user (created, or handed over if they exist)
DECLARE @owner sysname = N'$(CDR_WAREHOUSE_USER)';
DECLARE @schema sysname;
DECLARE project_schemas CURSOR LOCAL FAST_FORWARD FOR
    SELECT name FROM (VALUES
        (N'reference'),
        (N'$(CDR_MEDIATION_SCHEMA)'),
        (N'$(CDR_RATING_SCHEMA)'),
        (N'$(CDR_TARIFF_SCHEMA)'),
        (N'$(CDR_BILLING_SCHEMA)'),
        (N'$(CDR_MARTS_SCHEMA)')
    ) AS s(name);
OPEN project_schemas;
FETCH NEXT FROM project_schemas INTO @schema;
WHILE @@FETCH_STATUS = 0
BEGIN
    IF SCHEMA_ID(@schema) IS NULL
        EXEC (N'CREATE SCHEMA ' + QUOTENAME(@schema) + N' AUTHORIZATION ' + QUOTENAME(@owner));
    ELSE
        EXEC (N'ALTER AUTHORIZATION ON SCHEMA::' + QUOTENAME(@schema) + N' TO ' + QUOTENAME(@owner));
    FETCH NEXT FROM project_schemas INTO @schema;
END;
CLOSE project_schemas;
DEALLOCATE project_schemas;
GO

-- creating an object needs the database permission and the schema's (ownership gives the latter)
GRANT CREATE TABLE, CREATE VIEW, CREATE PROCEDURE, CREATE FUNCTION TO [$(CDR_WAREHOUSE_USER)];

-- the BI login: the marts, read-only, nothing else
GRANT SELECT ON SCHEMA::[$(CDR_MARTS_SCHEMA)] TO [$(CDR_BI_ROLE)];
GO
