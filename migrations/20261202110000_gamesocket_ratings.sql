-- Ratings (PROTOCOL.md "Ratings"): one row per user and game type, Glicko-2 (rating,
-- deviation, volatility) and the number of rated games behind it. Everyone reads them
-- (the leaderboard, the profiles). Only the server's role writes them, inside the
-- transaction that appends a rated game's final event (socket_server/store/settle.py:
-- the player appends the event under RLS, then the transaction switches to
-- gamesocket_server), so a rating changes exactly when, and only if, that event is stored.
-- Neither anon, authenticated (PostgREST) nor gamesocket_player may insert, update or
-- delete a row.

create table public.game_ratings (
  user_id uuid not null,
  game_type text not null,
  rating double precision not null,
  deviation double precision not null check (deviation > 0),
  volatility double precision not null check (volatility > 0),
  games integer not null default 0 check (games >= 0),
  updated_at timestamptz not null default now(),
  primary key (user_id, game_type)
);

create index game_ratings_board_idx on public.game_ratings (game_type, rating desc);

alter table public.game_ratings enable row level security;
alter table public.game_ratings force row level security;

create policy "everyone reads ratings"
on public.game_ratings for select
to anon, authenticated, gamesocket_player, gamesocket_server
using (true);

create policy "the server creates ratings"
on public.game_ratings for insert to gamesocket_server with check (true);

create policy "the server rates finished games"
on public.game_ratings for update to gamesocket_server using (true) with check (true);

revoke all on public.game_ratings
  from public, anon, authenticated, gamesocket_player, gamesocket_server;
grant select on public.game_ratings to anon, authenticated, gamesocket_player, gamesocket_server;
grant insert, update on public.game_ratings to gamesocket_server;
