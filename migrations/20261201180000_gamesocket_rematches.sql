-- Rematches (PROTOCOL.md "Rematch"): which new game a finished game's rematch is,
-- decided once. Written only by the server's role, which records the seats asking and,
-- once every human seat asked, the new game's id in one transaction (the row locked
-- `for update`: socket_server/store/rematches.py), so two players asking at once on two
-- processes agree on one new game. The game rows are not touched (the hardening trigger
-- refuses game-row changes without an event). The game's seated players read its row.

create table public.game_rematches (
  game_id uuid primary key references public.games (id) on delete cascade,
  offered_by text[] not null default '{}',
  new_game_id uuid,
  created_at timestamptz not null default now()
);

alter table public.game_rematches enable row level security;
alter table public.game_rematches force row level security;

create policy "seated players read their game's rematch"
on public.game_rematches for select to authenticated, gamesocket_player
using (private.caller_is_seated(game_id));

create policy "the server reads every rematch"
on public.game_rematches for select to gamesocket_server using (true);

create policy "the server records rematch offers"
on public.game_rematches for insert to gamesocket_server with check (true);

create policy "the server records who asked and the new game"
on public.game_rematches for update to gamesocket_server using (true) with check (true);

revoke all on public.game_rematches
  from public, anon, authenticated, gamesocket_player, gamesocket_server;
grant select on public.game_rematches to authenticated, gamesocket_player, gamesocket_server;
grant insert, update on public.game_rematches to gamesocket_server;
