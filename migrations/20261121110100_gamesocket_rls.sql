-- Row-level security for gamesocket, and the one function that changes a game.
--
-- Who may do what (the server checks the same rules first, for clear errors):
--   read     anyone (anon included) reads public games, their seats and moves; seated
--            users read their private games; everyone reads the events they wrote.
--   write    only through the server: as gamesocket_player with the player's claims,
--            or as gamesocket_server. anon and authenticated (PostgREST) only read.
--   create   a player creates a game they created, seating nobody but themselves.
--   append   a player appends, at the game's next version only: a move for the
--            seat to move (games.turn) when they hold it; a join of an empty seat of a
--            waiting game; a resign or draw for their own seat; an abort of a waiting or
--            active game they sit in or created. The server role appends AI moves,
--            resignations and draws for AI seats, and finish/abort housekeeping.
--   advance  a games row changes only to the version of an event the same role has just
--            appended (policy), one version at a time (trigger of the previous migration).
--   never    nobody updates or deletes an event, or writes game_seats directly.
-- The database checks who may change a game and when; what the new state is (the rules
-- of the game) is judged by the server.

-- Policy helpers. Security definer so that a policy on one table can look at another
-- without recursing into that table's policies; in `private`, which PostgREST does not
-- expose; search_path pinned so no caller can shadow a name.

create function private.is_seated(p_game_id uuid, p_user uuid) returns boolean
language sql stable security definer set search_path = '' as $$
  select exists (
    select 1 from public.game_seats s where s.game_id = p_game_id and s.user_id = p_user
  )
$$;

create function private.holds_seat(p_game_id uuid, p_seat text, p_user uuid) returns boolean
language sql stable security definer set search_path = '' as $$
  select exists (
    select 1 from public.game_seats s
    where s.game_id = p_game_id and s.seat = p_seat and s.user_id = p_user
  )
$$;

create function private.can_read_game(p_game_id uuid, p_user uuid) returns boolean
language sql stable security definer set search_path = '' as $$
  select exists (
    select 1 from public.games g
    where g.id = p_game_id and (g.public or private.is_seated(g.id, p_user))
  )
$$;

-- True when every human seat of `p_seats` is `p_user`.
create function private.seats_only(p_seats json, p_user uuid) returns boolean
language sql immutable set search_path = '' as $$
  select not exists (
    select 1 from json_each(p_seats) as s
    where json_typeof(s.value) = 'object' and s.value ->> 'kind' = 'human'
      and s.value ->> 'user_id' is distinct from p_user::text
  )
$$;

create function private.player_may_append(
  p_game_id uuid, p_version integer, p_kind text, p_seat text, p_user uuid
) returns boolean
language sql stable security definer set search_path = '' as $$
  select exists (
    select 1 from public.games g
    where g.id = p_game_id and g.version = p_version - 1 and p_user is not null
      and case p_kind
        when 'move' then g.status = 'active' and g.turn = p_seat
          and private.holds_seat(g.id, p_seat, p_user)
        when 'join' then g.status = 'waiting' and json_typeof(g.seats -> p_seat) = 'null'
        when 'resign' then g.status = 'active' and private.holds_seat(g.id, p_seat, p_user)
        when 'draw' then g.status = 'active' and private.is_seated(g.id, p_user)
          and (p_seat is null or private.holds_seat(g.id, p_seat, p_user))
        when 'abort' then g.status in ('waiting', 'active')
          and (g.created_by = p_user or private.is_seated(g.id, p_user))
        else false
      end
  )
$$;

create function private.server_may_append(
  p_game_id uuid, p_version integer, p_kind text, p_seat text
) returns boolean
language sql stable security definer set search_path = '' as $$
  select exists (
    select 1 from public.games g
    where g.id = p_game_id and g.version = p_version - 1
      and case p_kind
        when 'move' then g.status = 'active' and g.turn = p_seat
          and g.seats -> p_seat ->> 'kind' = 'ai'
        when 'resign' then g.status = 'active' and g.seats -> p_seat ->> 'kind' = 'ai'
        when 'draw' then g.status = 'active' and g.seats -> p_seat ->> 'kind' = 'ai'
        when 'finish' then g.status in ('waiting', 'active')
        when 'abort' then g.status in ('waiting', 'active')
        else false
      end
  )
$$;

-- Locks the game row for the rest of the transaction; false when there is no such game.
-- Definer because a row lock (select for update) would otherwise need the update policy.
create function private.lock_game(p_game_id uuid) returns boolean
language plpgsql volatile security definer set search_path = '' as $$
begin
  perform 1 from public.games g where g.id = p_game_id for update;
  return found;
end
$$;

-- RLS. games and game_seats are not forced: the definer helpers above read them as the
-- table owner. game_events is forced, so not even the owner may update or delete a row
-- (there is no policy for it; the append-only trigger backs this up).
alter table public.games enable row level security;
alter table public.game_seats enable row level security;
alter table public.game_events enable row level security;
alter table public.game_events force row level security;

create policy "public games and seated players' games are readable"
on public.games for select to anon, authenticated, gamesocket_player
using (public or private.is_seated(id, (select auth.uid())));

create policy "the server reads every game"
on public.games for select to gamesocket_server
using (true);

create policy "players create games seating only themselves"
on public.games for insert to gamesocket_player
with check (
  created_by = (select auth.uid()) and private.seats_only(seats, (select auth.uid()))
);

create policy "the server creates games"
on public.games for insert to gamesocket_server
with check (true);

create policy "players advance a game to the event they appended"
on public.games for update to gamesocket_player
using (
  exists (
    select 1 from public.game_events e
    where e.game_id = games.id and e.version = games.version + 1
      and e.user_id = (select auth.uid())
  )
)
with check (
  exists (
    select 1 from public.game_events e
    where e.game_id = games.id and e.version = games.version
      and e.user_id = (select auth.uid())
  )
);

create policy "the server advances a game to an appended event"
on public.games for update to gamesocket_server
using (
  exists (
    select 1 from public.game_events e
    where e.game_id = games.id and e.version = games.version + 1
  )
)
with check (
  exists (
    select 1 from public.game_events e
    where e.game_id = games.id and e.version = games.version
  )
);

create policy "seats of readable games are readable"
on public.game_seats for select to anon, authenticated, gamesocket_player
using (private.can_read_game(game_id, (select auth.uid())));

create policy "the server reads every seat"
on public.game_seats for select to gamesocket_server
using (true);

create policy "events of readable games, and one's own, are readable"
on public.game_events for select to anon, authenticated, gamesocket_player
using (
  private.can_read_game(game_id, (select auth.uid())) or user_id = (select auth.uid())
);

create policy "the server reads every event"
on public.game_events for select to gamesocket_server
using (true);

create policy "players append what their seat may do, at the next version"
on public.game_events for insert to gamesocket_player
with check (
  user_id = (select auth.uid())
  and private.player_may_append(game_id, version, kind, seat, (select auth.uid()))
);

create policy "the server appends for AI seats and housekeeping, at the next version"
on public.game_events for insert to gamesocket_server
with check (private.server_may_append(game_id, version, kind, seat));

-- One change of a game: the event and the new games row in one call, as the caller (so
-- the policies above decide). The row lock makes a concurrent change of the same game
-- wait, then fail the version check. Errors: GS409 stale version (or no such game),
-- GS208 the request id was applied before (DETAIL: its version), 42501 refused.
create function gamesocket.append_event(
  p_game_id uuid,
  p_version integer,
  p_status text,
  p_seats json,
  p_state jsonb,
  p_turn text,
  p_updated_at timestamptz,
  p_kind text,
  p_seat text,
  p_move jsonb,
  p_san text,
  p_user_id uuid,
  p_request_id text,
  p_data jsonb,
  p_at timestamptz
) returns void
language plpgsql volatile security invoker set search_path = '' as $$
declare
  seen integer;
begin
  if not private.lock_game(p_game_id) then
    raise exception 'no game %', p_game_id using errcode = 'GS409';
  end if;
  -- A retried request reports where it landed, even when its version is stale by now.
  if p_user_id is not null and p_request_id is not null then
    select e.version into seen from public.game_events e
    where e.game_id = p_game_id and e.user_id = p_user_id and e.request_id = p_request_id;
    if found then
      raise exception 'request % was applied at version %', p_request_id, seen
        using errcode = 'GS208', detail = seen::text;
    end if;
  end if;
  select g.version into seen from public.games g where g.id = p_game_id;
  if not found then
    raise exception 'game % is not visible to this user', p_game_id
      using errcode = 'insufficient_privilege';
  end if;
  if seen <> p_version - 1 then
    raise exception 'game % is at version %, not %', p_game_id, seen, p_version - 1
      using errcode = 'GS409';
  end if;
  insert into public.game_events
    (game_id, version, kind, seat, move, san, user_id, request_id, data, at)
  values
    (p_game_id, p_version, p_kind, p_seat, p_move, p_san, p_user_id, p_request_id, p_data, p_at);
  update public.games
  set status = p_status, seats = p_seats, state = p_state, turn = p_turn,
      version = p_version, updated_at = p_updated_at
  where id = p_game_id;
  if not found then
    raise exception 'game % may not be changed by this user', p_game_id
      using errcode = 'insufficient_privilege';
  end if;
end
$$;

-- Grants. Supabase grants everything on new public tables to anon and authenticated by
-- default; start from nothing and grant what the policies need.
revoke all on public.games, public.game_seats, public.game_events
  from public, anon, authenticated, gamesocket_player, gamesocket_server;
grant select on public.games, public.game_seats, public.game_events
  to anon, authenticated, gamesocket_player, gamesocket_server;
grant insert on public.games, public.game_events to gamesocket_player, gamesocket_server;
grant update (status, seats, state, turn, version, updated_at) on public.games
  to gamesocket_player, gamesocket_server;

revoke all on all functions in schema private from public;
revoke all on all functions in schema gamesocket from public;
grant usage on schema private to anon, authenticated, gamesocket_player, gamesocket_server;
grant usage on schema gamesocket to gamesocket_player, gamesocket_server;
grant execute on function
  private.is_seated(uuid, uuid),
  private.holds_seat(uuid, text, uuid),
  private.can_read_game(uuid, uuid),
  private.seats_only(json, uuid),
  private.player_may_append(uuid, integer, text, text, uuid)
  to anon, authenticated, gamesocket_player;
grant execute on function private.lock_game(uuid) to gamesocket_player, gamesocket_server;
grant execute on function private.server_may_append(uuid, integer, text, text)
  to gamesocket_server;
grant execute on function gamesocket.append_event(
  uuid, integer, text, json, jsonb, text, timestamptz,
  text, text, jsonb, text, uuid, text, jsonb, timestamptz
) to gamesocket_player, gamesocket_server;
