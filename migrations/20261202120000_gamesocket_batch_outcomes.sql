-- A batch of changes in one call, each in its own subtransaction, each with its outcome.
--
-- The server's store used to send three statements per change (savepoint, the call of
-- gamesocket.append_event_as, release or rollback to): a round trip each. A BEGIN ...
-- EXCEPTION block in PL/pgSQL is a subtransaction with the same semantics as that
-- savepoint: what the change wrote, and the role, claims and invite code it set for
-- itself, are rolled back with it when it fails, and kept when it succeeds (the next
-- change sets its own before it writes). So the changes that need nothing from the
-- server between their statements (all but a rated game's final change, whose ratings
-- the server computes) go in one call of this function: change i is the i-th element of
-- every array, they are applied in the order given (the server gives them in game id
-- order, the order every process locks rows in), and row i of the result is change i's
-- outcome: a null code if it was stored, else the SQLSTATE, message and detail of the
-- error it was rolled back with (the same error the savepoint path raises: GS409 stale,
-- GS208 duplicate request with its version as the detail, 42501 not permitted). Each
-- change is still judged by row-level security as its own writer: append_event_as
-- switches role and claims as its first step. A cancelled statement (query_canceled,
-- which `others` does not cover) fails its change alone as well, as the savepoint path
-- rolled it back to its savepoint. Granted to the writing roles only; it
-- can do nothing append_event_as could not.
create function gamesocket.try_append_events_as(
  p_role text[],
  p_claims text[],
  p_invite text[],
  p_game_id uuid[],
  p_version integer[],
  p_status text[],
  p_seats json[],
  p_state jsonb[],
  p_turn text[],
  p_updated_at timestamptz[],
  p_kind text[],
  p_seat text[],
  p_move jsonb[],
  p_san text[],
  p_user_id uuid[],
  p_request_id text[],
  p_data jsonb[],
  p_at timestamptz[],
  p_clock jsonb[]
) returns table (o_code text, o_message text, o_detail text)
language plpgsql volatile security invoker set search_path = '' as $$
begin
  for i in 1 .. coalesce(cardinality(p_game_id), 0) loop
    begin
      perform gamesocket.append_event_as(
        p_role[i], p_claims[i], p_invite[i], p_game_id[i], p_version[i], p_status[i],
        p_seats[i], p_state[i], p_turn[i], p_updated_at[i], p_kind[i], p_seat[i],
        p_move[i], p_san[i], p_user_id[i], p_request_id[i], p_data[i], p_at[i], p_clock[i]
      );
      o_code := null;
      o_message := null;
      o_detail := null;
    exception when others or query_canceled then
      get stacked diagnostics
        o_code = returned_sqlstate, o_message = message_text, o_detail = pg_exception_detail;
    end;
    return next;
  end loop;
end
$$;

revoke all on function gamesocket.try_append_events_as(
  text[], text[], text[], uuid[], integer[], text[], json[], jsonb[], text[], timestamptz[],
  text[], text[], jsonb[], text[], uuid[], text[], jsonb[], timestamptz[], jsonb[]
) from public;
grant execute on function gamesocket.try_append_events_as(
  text[], text[], text[], uuid[], integer[], text[], json[], jsonb[], text[], timestamptz[],
  text[], text[], jsonb[], text[], uuid[], text[], jsonb[], timestamptz[], jsonb[]
) to gamesocket_player, gamesocket_server;
