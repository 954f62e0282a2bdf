-- Clocks and abandoned games (PROTOCOL.md "Clocks", "Abandoned games").
--
-- * games.clock: the stored clock of a timed game (null: untimed), written with every
--   change by gamesocket.append_event, so every process and a restarted one see the
--   same clocks; under the same row-level security as the rest of the row.
-- * Two event kinds: `timeout` (the server, when the running seat's flag fell) and
--   `claim` (a seated player whose opponents left).

alter table public.games add column clock jsonb;
create index games_timed_idx on public.games (status) where clock is not null;

alter table public.game_events drop constraint game_events_kind_check;
alter table public.game_events add constraint game_events_kind_check
  check (kind in ('join', 'move', 'resign', 'draw', 'abort', 'finish', 'timeout', 'claim'));

grant update (clock) on public.games to gamesocket_player, gamesocket_server;

-- A player may also claim an active game in which they hold the seat they claim for.
create or replace function private.player_may_append(
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
        when 'claim' then g.status = 'active' and private.holds_seat(g.id, p_seat, p_user)
        else false
      end
  )
$$;

-- The server also stores a timeout: of the seat whose clock runs, in an active timed game.
create or replace function private.server_may_append(
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
        when 'timeout' then g.status = 'active' and g.clock is not null
          and g.clock ->> 'running' = p_seat
        else false
      end
  )
$$;

-- append_event with the clock: the old signature goes, so that no caller can change a
-- timed game without writing its clock.
drop function gamesocket.append_event(
  uuid, integer, text, json, jsonb, text, timestamptz,
  text, text, jsonb, text, uuid, text, jsonb, timestamptz
);

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
  p_at timestamptz,
  p_clock jsonb
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
      version = p_version, updated_at = p_updated_at, clock = p_clock
  where id = p_game_id;
  if not found then
    raise exception 'game % may not be changed by this user', p_game_id
      using errcode = 'insufficient_privilege';
  end if;
end
$$;

revoke all on function gamesocket.append_event(
  uuid, integer, text, json, jsonb, text, timestamptz,
  text, text, jsonb, text, uuid, text, jsonb, timestamptz, jsonb
) from public;
grant execute on function gamesocket.append_event(
  uuid, integer, text, json, jsonb, text, timestamptz,
  text, text, jsonb, text, uuid, text, jsonb, timestamptz, jsonb
) to gamesocket_player, gamesocket_server;
