-- gamesocket tables: games, the human seats of each game, and the append-only event log.
-- Runs unchanged under `supabase db push` and `gamesocket migrate`. Row-level security and
-- the functions that change a game are in the next migration.

-- Two roles that only the server's database user can switch to (PostgREST's
-- authenticator is no member of them), neither able to log in or bypass RLS:
--   gamesocket_player  a signed-in player's changes, made through the server: the
--                      player's JWT claims are set, so auth.uid() is that player. API
--                      clients (anon, authenticated) only read: no request can write a
--                      game without the server having checked it against the rules.
--   gamesocket_server  the server's own identity, for AI moves and housekeeping.
do $$
declare
  role_name text;
begin
  foreach role_name in array array['gamesocket_player', 'gamesocket_server'] loop
    begin
      execute format('create role %I nologin noinherit', role_name);
    exception
      when duplicate_object or unique_violation then null;  -- roles are cluster-wide
    end;
  end loop;
  -- The user that migrates is the one the server connects as: it switches to these
  -- roles. Granted even when already a member: on PostgreSQL 16+ the creator of a role
  -- is a member without the SET option until granted.
  begin
    grant gamesocket_player, gamesocket_server to current_user;
  exception
    when unique_violation then null;  -- a concurrent migration granted it
  end;
end
$$;

-- Not exposed through PostgREST: policy helpers and trigger functions.
create schema if not exists private;
-- Not exposed either: the functions the server calls to change a game.
create schema if not exists gamesocket;

create table public.games (
  id uuid primary key,
  game_type text not null,
  status text not null check (status in ('waiting', 'active', 'finished', 'aborted')),
  -- {seat: null | {"kind": "human", "user_id": ...} | {"kind": "ai", "level": n}}.
  -- json, not jsonb: jsonb reorders keys, and the seats are in turn order.
  seats json not null check (json_typeof(seats) = 'object'),
  state jsonb not null,
  version integer not null check (version >= 0),
  -- The seat to move, written by the server from the rules, so that RLS can check it.
  turn text,
  public boolean not null default true,
  options jsonb not null default '{}'::jsonb,
  created_by uuid,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
-- Lobby listing (newest first) and the `public` filter of the read policy.
create index games_public_created_idx on public.games (public, created_at desc);
create index games_type_status_created_idx on public.games (game_type, status, created_at desc);
create index games_created_by_idx on public.games (created_by);

-- One row per human seat, kept in step with games.seats by a trigger: the membership
-- the policies check, indexed both ways.
create table public.game_seats (
  game_id uuid not null references public.games (id),
  seat text not null,
  user_id uuid not null,
  primary key (game_id, seat)
);
create index game_seats_user_idx on public.game_seats (user_id, game_id);

create table public.game_events (
  game_id uuid not null references public.games (id),
  version integer not null check (version > 0),
  kind text not null check (kind in ('join', 'move', 'resign', 'draw', 'abort', 'finish')),
  seat text,
  move jsonb,
  san text,
  user_id uuid,
  request_id text,
  data jsonb not null default '{}'::jsonb,
  at timestamptz not null default now(),
  -- No two changes of a game share a version.
  primary key (game_id, version),
  -- A client message id is applied at most once per user and game.
  constraint game_events_request_key unique (game_id, user_id, request_id)
);
create index game_events_user_idx on public.game_events (user_id);

-- games.seats -> game_seats. Security definer: players never write game_seats themselves.
create function private.sync_game_seats() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  delete from public.game_seats where game_id = new.id;
  insert into public.game_seats (game_id, seat, user_id)
  select new.id, s.key, (s.value ->> 'user_id')::uuid
  from json_each(new.seats) as s
  where json_typeof(s.value) = 'object' and s.value ->> 'kind' = 'human';
  return null;
end
$$;
create trigger games_sync_seats_insert
after insert on public.games
for each row execute function private.sync_game_seats();
create trigger games_sync_seats_update
after update of seats on public.games
for each row when (old.seats::jsonb is distinct from new.seats::jsonb)
execute function private.sync_game_seats();

-- A game row only moves forward one version at a time, and what identifies it never
-- changes. Applies to every role, the owner included.
create function private.guard_game_update() returns trigger
language plpgsql set search_path = '' as $$
begin
  if new.version <> old.version + 1 then
    raise exception 'game % must advance from version % to %, not %',
      old.id, old.version, old.version + 1, new.version
      using errcode = 'GS409';
  end if;
  if (new.id, new.game_type, new.public, new.options, new.created_by, new.created_at)
     is distinct from
     (old.id, old.game_type, old.public, old.options, old.created_by, old.created_at) then
    raise exception 'game % : only status, seats, state, turn and version change', old.id
      using errcode = 'insufficient_privilege';
  end if;
  return new;
end
$$;
create trigger games_guard_update
before update on public.games
for each row execute function private.guard_game_update();

-- The log is append-only for everybody: no grant allows it, and this trigger stops even
-- the table owner.
create function private.forbid_event_change() returns trigger
language plpgsql set search_path = '' as $$
begin
  raise exception 'game_events is append-only (% refused)', tg_op
    using errcode = 'insufficient_privilege';
end
$$;
create trigger game_events_append_only
before update or delete on public.game_events
for each row execute function private.forbid_event_change();
create trigger game_events_no_truncate
before truncate on public.game_events
for each statement execute function private.forbid_event_change();
