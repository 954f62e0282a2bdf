-- A seek is placed in one call (one round trip), so the pool's advisory lock is held
-- only while the database works, never while the server's event loop is busy between
-- statements: gamesocket.place_seek does what socket_server/store/seeks.py did in five
-- statements. Run as gamesocket_server (the only role that writes seeks).
--
-- Returns the seeks it touched, each with `role`: 'gone' (the owner's replaced seek and
-- the pool's lapsed ones), 'partner' (the seek paired with, now paired), 'placed' (the
-- new seek: paired into p_game_id, or waiting).

create function gamesocket.place_seek(
  p_seek_id uuid, p_user_id uuid, p_pool text, p_game_type text, p_clock jsonb,
  p_rated boolean, p_now double precision, p_ttl double precision, p_game_id uuid
) returns table (
  role text, seek_id text, user_id text, pool text, game_type text, clock text,
  rated boolean, status text, game_id text, created_at double precision,
  seen_at double precision
)
language plpgsql volatile security invoker set search_path = '' as $$
#variable_conflict use_column
declare
  partner uuid;
begin
  perform pg_advisory_xact_lock(hashtextextended(p_pool, 0));
  return query
    update public.seeks s
    set status = case when s.user_id = p_user_id then 'withdrawn' else 'expired' end
    where s.pool = p_pool and s.status = 'waiting'
      and (s.user_id = p_user_id or s.seen_at < p_now - p_ttl)
    returning 'gone'::text, s.seek_id::text, s.user_id::text, s.pool, s.game_type,
      s.clock::text, s.rated, s.status, s.game_id::text, s.created_at, s.seen_at;
  select s.seek_id into partner from public.seeks s
  where s.pool = p_pool and s.status = 'waiting' and s.user_id <> p_user_id
  order by s.created_at, s.seek_id limit 1 for update;
  if partner is not null then
    return query
      update public.seeks s set status = 'paired', game_id = p_game_id
      where s.seek_id = partner
      returning 'partner'::text, s.seek_id::text, s.user_id::text, s.pool, s.game_type,
        s.clock::text, s.rated, s.status, s.game_id::text, s.created_at, s.seen_at;
  end if;
  return query
    insert into public.seeks as s
      (seek_id, user_id, pool, game_type, clock, rated, status, game_id, created_at, seen_at)
    values (
      p_seek_id, p_user_id, p_pool, p_game_type, p_clock, p_rated,
      case when partner is null then 'waiting' else 'paired' end,
      case when partner is null then null else p_game_id end, p_now, p_now
    )
    returning 'placed'::text, s.seek_id::text, s.user_id::text, s.pool, s.game_type,
      s.clock::text, s.rated, s.status, s.game_id::text, s.created_at, s.seen_at;
end
$$;

revoke all on function gamesocket.place_seek(
  uuid, uuid, text, text, jsonb, boolean, double precision, double precision, uuid
) from public;
grant execute on function gamesocket.place_seek(
  uuid, uuid, text, text, jsonb, boolean, double precision, double precision, uuid
) to gamesocket_server;
