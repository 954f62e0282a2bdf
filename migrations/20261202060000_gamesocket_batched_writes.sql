-- Cheaper checks on the write path; the same decisions.
--
-- The read policy of game_events is also what the write path's own reads of the log
-- see: the update policies of games and private.guard_game_transition read the event
-- being applied as the writer, three reads per change. The cheap half of the policy
-- comes first now: a writer's own event is readable without asking
-- private.caller_can_read (a security-definer call each time). `or` is the same
-- either way round; PostgreSQL evaluates its operands in the order written.
alter policy "events of readable games, and one's own, are readable" on public.game_events
  using (user_id = (select auth.uid()) or private.caller_can_read(game_id));

-- One change as its writer, in one call: the server's store stores the changes that
-- arrive together in one transaction, each in its own savepoint, and switches to each
-- change's role and claims (and the invite code its join carries) as this call's first
-- step, before gamesocket.append_event runs under row-level security as that writer.
-- Granted to the writing roles only, and it can take no role the database user could
-- not take with set_config: it saves a round trip per change, nothing more.
create function gamesocket.append_event_as(
  p_role text,
  p_claims text,
  p_invite text,
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
begin
  if p_role not in ('gamesocket_player', 'gamesocket_server') then
    raise exception 'a change is written as gamesocket_player or gamesocket_server, not %',
      p_role using errcode = 'insufficient_privilege';
  end if;
  perform set_config('role', p_role, true);
  perform set_config('request.jwt.claims', p_claims, true);
  perform set_config('gamesocket.invite', coalesce(p_invite, ''), true);
  perform gamesocket.append_event(
    p_game_id, p_version, p_status, p_seats, p_state, p_turn, p_updated_at, p_kind,
    p_seat, p_move, p_san, p_user_id, p_request_id, p_data, p_at, p_clock
  );
end
$$;

revoke all on function gamesocket.append_event_as(
  text, text, text, uuid, integer, text, json, jsonb, text, timestamptz,
  text, text, jsonb, text, uuid, text, jsonb, timestamptz, jsonb
) from public;
grant execute on function gamesocket.append_event_as(
  text, text, text, uuid, integer, text, json, jsonb, text, timestamptz,
  text, text, jsonb, text, uuid, text, jsonb, timestamptz, jsonb
) to gamesocket_player, gamesocket_server;

-- The append checks of the insert policies, in PL/pgSQL: PostgreSQL 15 plans the body
-- of a SQL function that cannot be inlined (a security-definer one) afresh on every
-- call, PL/pgSQL keeps its plans for the session. The seat lookups are written out
-- (these functions read as the owner already). The same conditions as in
-- 20261201100000_gamesocket_clocks.sql; the grants stay as they were.
create or replace function private.player_may_append(
  p_game_id uuid, p_version integer, p_kind text, p_seat text, p_user uuid
) returns boolean
language plpgsql stable security definer set search_path = '' as $$
begin
  return p_user is not null and exists (
    select 1 from public.games g
    where g.id = p_game_id and g.version = p_version - 1
      and case p_kind
        when 'move' then g.status = 'active' and g.turn = p_seat
          and exists (select 1 from public.game_seats s
                      where s.game_id = g.id and s.seat = p_seat and s.user_id = p_user)
        when 'join' then g.status = 'waiting' and json_typeof(g.seats -> p_seat) = 'null'
        when 'resign' then g.status = 'active'
          and exists (select 1 from public.game_seats s
                      where s.game_id = g.id and s.seat = p_seat and s.user_id = p_user)
        when 'draw' then g.status = 'active'
          and exists (select 1 from public.game_seats s
                      where s.game_id = g.id and s.user_id = p_user
                        and (p_seat is null or s.seat = p_seat))
        when 'abort' then g.status in ('waiting', 'active')
          and (g.created_by = p_user
               or exists (select 1 from public.game_seats s
                          where s.game_id = g.id and s.user_id = p_user))
        when 'claim' then g.status = 'active'
          and exists (select 1 from public.game_seats s
                      where s.game_id = g.id and s.seat = p_seat and s.user_id = p_user)
        else false
      end
  );
end
$$;

create or replace function private.server_may_append(
  p_game_id uuid, p_version integer, p_kind text, p_seat text
) returns boolean
language plpgsql stable security definer set search_path = '' as $$
begin
  return exists (
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
  );
end
$$;
