-- Invites (PROTOCOL.md "Invites"): a private game's code lets one signed-in stranger
-- take its free seat.
--
-- * public.game_invites: one code per private game, written with the game (in the same
--   transaction, by its creator or the server). Readable only by the game's seated
--   players (and the server): no spectator, stranger or API client learns it.
-- * A join of a private game is admitted (restrictive policy on game_events) only for a
--   seated player, the game's creator, or an event whose data carries the game's code
--   (`{"invite": "<code>"}`), compared by a definer helper: the database decides.
-- * The joiner cannot read the private game before the join, yet append_event (security
--   invoker) reads and updates the game row: while a transaction's setting
--   `gamesocket.invite` holds the game's code and the game is waiting with a free seat,
--   gamesocket_player may read that row (a policy for the server's writing role only;
--   PostgREST's anon and authenticated never get it). Once no seat is free the code
--   opens nothing.

create table public.game_invites (
  game_id uuid primary key references public.games (id) on delete cascade,
  code text not null check (length(code) between 16 and 64)
);

alter table public.game_invites enable row level security;

-- True when the caller created the game (read as the owner: the creator of a private
-- game seating nobody cannot read it).
create function private.caller_created(p_game_id uuid) returns boolean
language sql stable security definer set search_path = '' as $$
  select exists (
    select 1 from public.games g where g.id = p_game_id and g.created_by = (select auth.uid())
  )
$$;

-- True when `p_code` is the code of a private game that still has a free seat.
create function private.invite_opens(p_game_id uuid, p_code text) returns boolean
language sql stable security definer set search_path = '' as $$
  select p_code is not null and exists (
    select 1 from public.game_invites i join public.games g on g.id = i.game_id
    where i.game_id = p_game_id and i.code = p_code and not g.public
      and g.status = 'waiting'
      and exists (select 1 from json_each(g.seats) s where json_typeof(s.value) = 'null')
  )
$$;

-- The code this transaction's join carries (set by the server's store), if it opens the game.
create function private.caller_invited(p_game_id uuid) returns boolean
language sql stable security definer set search_path = '' as $$
  select private.invite_opens(
    p_game_id, nullif(current_setting('gamesocket.invite', true), '')
  )
$$;

-- Whether the caller may join game `p_game_id` with an event carrying `p_data`.
create function private.join_admitted(p_game_id uuid, p_data jsonb) returns boolean
language sql stable security definer set search_path = '' as $$
  select exists (
    select 1 from public.games g
    where g.id = p_game_id
      and (g.public or g.created_by = (select auth.uid())
           or private.is_seated(g.id, (select auth.uid()))
           or private.invite_opens(g.id, p_data ->> 'invite'))
  )
$$;

create policy "seated players read their game's invite"
on public.game_invites for select to anon, authenticated, gamesocket_player
using (private.caller_is_seated(game_id));

create policy "the server reads every invite"
on public.game_invites for select to gamesocket_server
using (true);

create policy "a game's creator writes its invite"
on public.game_invites for insert to gamesocket_player
with check (private.caller_created(game_id));

create policy "the server writes invites"
on public.game_invites for insert to gamesocket_server
with check (true);

create policy "an invited player reads the game being joined"
on public.games for select to gamesocket_player
using (private.caller_invited(id));

create policy "a private game is joined by invite only"
on public.game_events as restrictive for insert to gamesocket_player
with check (kind <> 'join' or private.join_admitted(game_id, data));

revoke all on public.game_invites
  from public, anon, authenticated, gamesocket_player, gamesocket_server;
grant select on public.game_invites
  to anon, authenticated, gamesocket_player, gamesocket_server;
grant insert on public.game_invites to gamesocket_player, gamesocket_server;

revoke all on function
  private.caller_created(uuid),
  private.invite_opens(uuid, text),
  private.caller_invited(uuid),
  private.join_admitted(uuid, jsonb)
  from public;
grant execute on function
  private.caller_created(uuid), private.caller_invited(uuid), private.join_admitted(uuid, jsonb)
  to gamesocket_player;
