-- The players' append check, one plain query per event kind; the same decisions.
--
-- private.player_may_append was one query whose CASE on the kind held a subquery per
-- kind. PL/pgSQL plans it for its parameters: its generic plan (the kind unknown) costs
-- far more than a custom plan (the kind folded), so PostgreSQL planned it afresh on
-- every call. That was 124 us of the 450 us a change spent in the database's functions
-- (`pg_stat_user_functions` in the store benchmark; 74 us a call in a loop against 5 us
-- for the 'move' query alone). Here the game row is read once, and each kind asks at
-- most one question of game_seats, its own statement with nothing left to fold: every
-- plan is generic and kept for the session. It answers true or false, never null. The
-- conditions are those of 20261202060000_gamesocket_batched_writes.sql; the grants stay
-- as they were.
create or replace function private.player_may_append(
  p_game_id uuid, p_version integer, p_kind text, p_seat text, p_user uuid
) returns boolean
language plpgsql stable security definer set search_path = '' as $$
declare
  game_status text;
  game_turn text;
  game_seats json;
  game_creator uuid;
begin
  if p_user is null then
    return false;
  end if;
  select g.status, g.turn, g.seats, g.created_by
    into game_status, game_turn, game_seats, game_creator
  from public.games g
  where g.id = p_game_id and g.version = p_version - 1;
  if not found then
    return false;
  end if;
  case p_kind
    when 'join' then
      return coalesce(
        game_status = 'waiting' and json_typeof(game_seats -> p_seat) = 'null', false
      );
    when 'move' then
      if game_status <> 'active' or game_turn is distinct from p_seat then
        return false;
      end if;
    when 'resign', 'claim' then
      if game_status <> 'active' then
        return false;
      end if;
    when 'draw' then
      if game_status <> 'active' then
        return false;
      end if;
      if p_seat is null then
        return exists (select 1 from public.game_seats s
                       where s.game_id = p_game_id and s.user_id = p_user);
      end if;
    when 'abort' then
      if game_status not in ('waiting', 'active') then
        return false;
      end if;
      return coalesce(game_creator = p_user, false)
        or exists (select 1 from public.game_seats s
                   where s.game_id = p_game_id and s.user_id = p_user);
    else
      return false;
  end case;
  -- move, resign, claim, and a draw for a named seat: the caller holds that seat.
  return exists (select 1 from public.game_seats s
                 where s.game_id = p_game_id and s.seat = p_seat and s.user_id = p_user);
end
$$;
