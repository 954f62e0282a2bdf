-- What a Supabase project provides before any migration runs, for a plain PostgreSQL
-- (tests, `gamesocket migrate --bootstrap-local`). Never part of migrations/: on
-- Supabase these objects exist already. Idempotent, and safe to run concurrently in
-- several databases of one cluster (roles are cluster-wide and are never dropped).

do $$
declare
  spec text[];
begin
  foreach spec slice 1 in array array[
    ['anon', 'nologin noinherit'],
    ['authenticated', 'nologin noinherit'],
    ['service_role', 'nologin noinherit bypassrls'],
    ['authenticator', 'login noinherit']
  ] loop
    begin
      execute format('create role %I %s', spec[1], spec[2]);
    exception
      when duplicate_object or unique_violation then null;
    end;
  end loop;
  -- PostgREST's login role switches to these; so does the role of the database URL,
  -- once per transaction.
  begin
    grant anon, authenticated, service_role to authenticator, current_user;
  exception
    when unique_violation then null;  -- a concurrent bootstrap granted it
  end;
end
$$;

create schema if not exists auth;
grant usage on schema auth to anon, authenticated, service_role;

create table if not exists auth.users (
  id uuid primary key,
  email text,
  role text,
  raw_app_meta_data jsonb,
  raw_user_meta_data jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

-- As Supabase defines them: the claims of the request's JWT, set per transaction by
-- PostgREST (and by PostgresStore) in `request.jwt.claims`, or the older per-claim GUCs.
create or replace function auth.uid() returns uuid
language sql stable as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$;

create or replace function auth.role() returns text
language sql stable as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.role', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
  )::text
$$;

create or replace function auth.jwt() returns jsonb
language sql stable as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')
  )::jsonb
$$;
