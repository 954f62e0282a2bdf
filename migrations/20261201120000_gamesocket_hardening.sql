-- Defense in depth: the database trusts less of what it is given.
--
-- 1. The policy helpers no longer answer questions about other users. The read
--    policies of anon, authenticated and gamesocket_player call two new helpers that
--    take no user: they ask about the caller (auth.uid()) only. The helpers that take a
--    user (is_seated, holds_seat, can_read_game) and the append checks are no longer
--    executable by anon or authenticated: nobody probes the seats or versions of a
--    private game by calling them. What each role may still execute:
--      anon, authenticated   caller_is_seated, caller_can_read (their read policies)
--      gamesocket_player     the same, player_may_append and seats_only (its insert
--                            policies), lock_game and gamesocket.append_event
--      gamesocket_server     server_may_append, lock_game and gamesocket.append_event
--    and both writing roles the pure checks of part 2 (*_problem: they read no table).
--    Trigger functions themselves need no EXECUTE.
-- 2. A games row changes only as the event of its new version justifies (a trigger,
--    for every role that writes, the server included):
--      seats    only a `join` changes them: it fills one empty seat with the user who
--               wrote the event; every other event leaves the seats as they were;
--      status   never goes back, and a game that ended never changes; a join leaves
--               the game `waiting` while a seat is empty and makes it `active` when
--               none is; `resign`, `draw`, `claim`, `timeout` finish the game, `abort`
--               aborts it, a `move` keeps it active or finishes it, and `finish` (the
--               server's housekeeping) does either;
--      history  only a `move` changes the state's move history: by exactly its move;
--      result   only with an ended status (a finished game has one), and only as the
--               event's kind can end a game:
--               a move by the rules (the database cannot check the rules, but such a
--               win is the mover's, or a draw, never for a reason outside the rules), a
--               resignation for the opponent, an agreed draw for nobody, an abort with
--               reason `aborted`, a claim for the claimer (`abandoned`), a timeout not
--               for the seat whose time ran out; a join ends nothing.
--    Errors: SQLSTATE 42501, like every refusal of row-level security.
-- 3. An event is stored only with its game row: at commit, a game that has not reached
--    the version of an event appended in the transaction refuses the commit (a player
--    cannot leave a forged join in the log without the row that would have to follow).
--
-- A maintenance update of a game row by hand must now come with its event, or disable
-- the trigger `games_guard_update_transition` deliberately. New event kinds must be
-- added to private.status_problem and private.result_problem as well.

-- 1. Helpers about the caller only ----------------------------------------------------

create function private.caller_is_seated(p_game_id uuid) returns boolean
language sql stable security definer set search_path = '' as $$
  select private.is_seated(p_game_id, (select auth.uid()))
$$;

create function private.caller_can_read(p_game_id uuid) returns boolean
language sql stable security definer set search_path = '' as $$
  select private.can_read_game(p_game_id, (select auth.uid()))
$$;

alter policy "public games and seated players' games are readable" on public.games
  using (public or private.caller_is_seated(id));

alter policy "seats of readable games are readable" on public.game_seats
  using (private.caller_can_read(game_id));

alter policy "events of readable games, and one's own, are readable" on public.game_events
  using (private.caller_can_read(game_id) or user_id = (select auth.uid()));

-- 2. Game rows change only as their event says --------------------------------------

-- Why the seats may not go from p_old to p_new with this event, or null.
create function private.seats_problem(
  p_old jsonb, p_new jsonb, p_kind text, p_seat text, p_user uuid
) returns text
language plpgsql immutable set search_path = '' as $$
begin
  if p_kind <> 'join' then
    if p_new is distinct from p_old then
      return 'only a join changes the seats';
    end if;
    return null;
  end if;
  if p_seat is null or not (p_old ? p_seat) or jsonb_typeof(p_old -> p_seat) <> 'null' then
    return 'a join takes an empty seat of the game';
  end if;
  if (p_new - p_seat) is distinct from (p_old - p_seat) then
    return 'a join changes no other seat';
  end if;
  if p_user is null or p_new -> p_seat ->> 'kind' is distinct from 'human'
     or p_new -> p_seat ->> 'user_id' is distinct from p_user::text then
    return 'a join seats the user who joins';
  end if;
  return null;
end
$$;

-- Why the status may not go from p_old to p_new with this event, or null.
create function private.status_problem(
  p_old text, p_new text, p_seats jsonb, p_kind text
) returns text
language plpgsql immutable set search_path = '' as $$
declare
  empty_seat boolean := exists (
    select 1 from jsonb_each(p_seats) as s where jsonb_typeof(s.value) = 'null'
  );
  allowed boolean;
begin
  if p_old in ('finished', 'aborted') then
    return 'a game that ended does not change';
  end if;
  if p_kind = 'join' then
    if p_new is distinct from (case when empty_seat then 'waiting' else 'active' end) then
      return 'a join leaves a game waiting while a seat is empty, else active';
    end if;
    return null;
  end if;
  if p_new = 'waiting' or (p_old = 'waiting' and p_new = 'active') then
    return 'only a join changes a waiting game but to its end';
  end if;
  allowed := case p_kind
    when 'move' then p_new in ('active', 'finished')
    when 'finish' then p_new in ('finished', 'aborted')
    when 'abort' then p_new = 'aborted'
    when 'resign' then p_new = 'finished'
    when 'draw' then p_new = 'finished'
    when 'claim' then p_new = 'finished'
    when 'timeout' then p_new = 'finished'
    else false
  end;
  if coalesce(allowed, false) then
    return null;
  end if;
  return format('a %s event cannot make the game %s', p_kind, p_new);
end
$$;

-- Why `p_result` (not null) cannot be the result of this event, or null.
create function private.result_problem(
  p_result jsonb, p_status text, p_seats jsonb, p_kind text, p_seat text
) returns text
language plpgsql immutable set search_path = '' as $$
declare
  reason text := p_result ->> 'reason';
  winner text := p_result ->> 'winner';  -- null: a draw (or no winner at all)
  allowed boolean;
begin
  if jsonb_typeof(p_result) <> 'object' or reason is null then
    return 'a result names its reason';
  end if;
  if p_status not in ('finished', 'aborted') or (p_status = 'aborted') <> (reason = 'aborted')
  then
    return 'a result comes with the end of the game (aborted: the reason aborted)';
  end if;
  if winner is not null and not (p_seats ? winner) then
    return 'the winner is a seat of the game';
  end if;
  allowed := case p_kind
    when 'move' then reason not in (
        'resignation', 'draw_agreed', 'aborted', 'abandoned',
        'timeout', 'timeout_vs_insufficient_material'
      ) and (winner is null or winner = p_seat)
    when 'resign' then reason = 'resignation' and winner is not null and winner <> p_seat
    when 'draw' then reason = 'draw_agreed' and winner is null
    when 'abort' then reason = 'aborted' and winner is null
    when 'claim' then reason = 'abandoned' and winner = p_seat
    when 'timeout' then reason in ('timeout', 'timeout_vs_insufficient_material')
      and winner is distinct from p_seat
    when 'finish' then true
    else false
  end;
  if coalesce(allowed, false) then
    return null;
  end if;
  return format('a %s event cannot end the game with %s', p_kind, p_result);
end
$$;

-- Why the state may not go from p_old to p_new with this event, or null.
create function private.state_problem(
  p_old jsonb, p_new jsonb, p_status text, p_seats jsonb, p_kind text, p_seat text,
  p_move jsonb
) returns text
language plpgsql immutable set search_path = '' as $$
declare
  result jsonb := nullif(p_new -> 'result', 'null'::jsonb);
begin
  if p_kind = 'move' then
    if (p_new -> 'history') is distinct from
       (coalesce(p_old -> 'history', '[]'::jsonb) || jsonb_build_array(p_move)) then
      return 'a move adds exactly its move to the history';
    end if;
  elsif (p_new -> 'history') is distinct from (p_old -> 'history') then
    return 'only a move changes the history';
  end if;
  if result is null then
    if p_status = 'finished' then
      return 'a finished game has a result';
    end if;
    return null;  -- an abort may leave the result out: its status says it all
  end if;
  return private.result_problem(result, p_status, p_seats, p_kind, p_seat);
end
$$;

-- Before every update of a game row (after games_guard_update, which fires first by
-- name): the event of the new version must justify the new seats, status and state.
-- Security invoker: the event is read as the role writing, which may read it (its own
-- event, or the server's).
create function private.guard_game_transition() returns trigger
language plpgsql set search_path = '' as $$
declare
  appended record;
  problem text;
begin
  select e.kind, e.seat, e.move, e.user_id into appended
  from public.game_events e
  where e.game_id = new.id and e.version = new.version;
  if not found then
    raise exception 'game % : no event of version % to justify the change', new.id, new.version
      using errcode = 'insufficient_privilege';
  end if;
  problem := coalesce(
    private.seats_problem(old.seats::jsonb, new.seats::jsonb, appended.kind, appended.seat,
                          appended.user_id),
    private.status_problem(old.status, new.status, new.seats::jsonb, appended.kind),
    private.state_problem(old.state, new.state, new.status, new.seats::jsonb, appended.kind,
                          appended.seat, appended.move)
  );
  if problem is not null then
    raise exception 'game % version % refused: %', new.id, new.version, problem
      using errcode = 'insufficient_privilege';
  end if;
  return new;
end
$$;

create trigger games_guard_update_transition
before update on public.games
for each row execute function private.guard_game_transition();

-- 3. No event without its game row ------------------------------------------------------

-- At commit: the game has reached the version of every event appended to it. Definer,
-- so it sees the game row whatever the writer may read.
create function private.check_event_applied() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  if not exists (
    select 1 from public.games g where g.id = new.game_id and g.version >= new.version
  ) then
    raise exception 'event % of game % was appended without its game row', new.version,
      new.game_id
      using errcode = 'insufficient_privilege';
  end if;
  return null;
end
$$;

create constraint trigger game_events_come_with_their_game
after insert on public.game_events
deferrable initially deferred
for each row execute function private.check_event_applied();

-- Grants --------------------------------------------------------------------------------

revoke all on function
  private.caller_is_seated(uuid),
  private.caller_can_read(uuid),
  private.seats_problem(jsonb, jsonb, text, text, uuid),
  private.status_problem(text, text, jsonb, text),
  private.result_problem(jsonb, text, jsonb, text, text),
  private.state_problem(jsonb, jsonb, text, jsonb, text, text, jsonb),
  private.guard_game_transition(),
  private.check_event_applied()
  from public;
grant execute on function private.caller_is_seated(uuid), private.caller_can_read(uuid)
  to anon, authenticated, gamesocket_player;
-- The transition checks run as the role that writes (they read no table).
grant execute on function
  private.seats_problem(jsonb, jsonb, text, text, uuid),
  private.status_problem(text, text, jsonb, text),
  private.result_problem(jsonb, text, jsonb, text, text),
  private.state_problem(jsonb, jsonb, text, jsonb, text, text, jsonb)
  to gamesocket_player, gamesocket_server;

-- Helpers that take a user, or check an append: never for API clients.
revoke all on function
  private.is_seated(uuid, uuid),
  private.holds_seat(uuid, text, uuid),
  private.can_read_game(uuid, uuid)
  from public, anon, authenticated, gamesocket_player;
revoke all on function
  private.player_may_append(uuid, integer, text, text, uuid),
  private.seats_only(json, uuid)
  from public, anon, authenticated;
