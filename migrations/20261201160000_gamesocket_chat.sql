-- Chat per game (PROTOCOL.md "Chat").
--
-- * public.game_chat: one row per message; seq 1, 2, ... per game (primary key
--   (game_id, seq)), one row per (game, author, request id).
-- * Read: a room is readable by whoever may read the game (private.caller_can_read);
--   the `spectators` room only by callers who hold no seat in it (players never see
--   it). Authors read their own rows as well (the server's duplicate and rate checks
--   run as the author).
-- * Write: only gamesocket_player (the server, as the signed-in author) inserts, and
--   only as the author: into `players` when seated, into `spectators` when not, in a
--   game the author may read. anon and authenticated (API clients) cannot insert;
--   nobody updates or deletes (RLS is forced and no policy allows it).
-- * seq: the server takes the transaction-scoped advisory lock of the game's chat,
--   then asks private.chat_last_seq (definer: the author cannot see every row) for the
--   last seq; the primary key backs this up.

create table public.game_chat (
  game_id uuid not null references public.games (id) on delete cascade,
  seq integer not null check (seq > 0),
  room text not null check (room in ('players', 'spectators')),
  user_id uuid not null,
  text text not null check (char_length(text) between 1 and 500),
  request_id text check (char_length(request_id) <= 64),
  at timestamptz not null default now(),
  primary key (game_id, seq)
);
create unique index game_chat_request_idx on public.game_chat (game_id, user_id, request_id)
  where request_id is not null;
create index game_chat_author_idx on public.game_chat (game_id, user_id, at);

alter table public.game_chat enable row level security;
alter table public.game_chat force row level security;

create policy "chat rooms are readable by who may read them, and one's own messages"
on public.game_chat for select to anon, authenticated, gamesocket_player
using (
  (
    private.caller_can_read(game_id)
    and (room = 'players' or not private.caller_is_seated(game_id))
  )
  or user_id = (select auth.uid())
);

create policy "the server reads every chat message"
on public.game_chat for select to gamesocket_server
using (true);

create policy "authors write to their own room of a game they may read"
on public.game_chat for insert to gamesocket_player
with check (
  user_id = (select auth.uid())
  and private.caller_can_read(game_id)
  and (room = 'players') = private.caller_is_seated(game_id)
);

-- The last seq of a game's chat (0 for none), whoever may see which rows.
create function private.chat_last_seq(p_game_id uuid) returns integer
language sql stable security definer set search_path = '' as $$
  select coalesce(max(c.seq), 0) from public.game_chat c where c.game_id = p_game_id
$$;

revoke all on public.game_chat from public, anon, authenticated, gamesocket_player,
  gamesocket_server;
grant select on public.game_chat to anon, authenticated, gamesocket_player, gamesocket_server;
grant insert on public.game_chat to gamesocket_player;

revoke all on function private.chat_last_seq(uuid) from public;
grant execute on function private.chat_last_seq(uuid) to gamesocket_player;
