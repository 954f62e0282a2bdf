-- Seeks (PROTOCOL.md "Seeks (quick pairing)"): written only by the server's role, which
-- pairs them in one transaction per seek (socket_server/store/seeks.py: an advisory lock
-- per pool, the partner row locked `for update`), so a seek pairs exactly once across
-- processes. A signed-in user reads their own seeks; nobody else reads any.

create table public.seeks (
  seek_id uuid primary key,
  user_id uuid not null,
  pool text not null,
  game_type text not null,
  clock jsonb,
  rated boolean not null,
  status text not null check (status in ('waiting', 'paired', 'expired', 'withdrawn')),
  game_id uuid,
  created_at double precision not null,
  seen_at double precision not null,
  check ((status = 'paired') = (game_id is not null))
);

create index seeks_waiting_idx on public.seeks (pool, created_at) where status = 'waiting';

alter table public.seeks enable row level security;

create policy "users read their own seeks"
on public.seeks for select to authenticated, gamesocket_player
using (user_id = (select auth.uid()));

create policy "the server reads every seek"
on public.seeks for select to gamesocket_server using (true);

create policy "the server writes seeks"
on public.seeks for insert to gamesocket_server with check (true);

create policy "the server pairs, withdraws and lapses seeks"
on public.seeks for update to gamesocket_server using (true) with check (true);

revoke all on public.seeks from public, anon, authenticated, gamesocket_player, gamesocket_server;
grant select on public.seeks to authenticated, gamesocket_player, gamesocket_server;
grant insert, update on public.seeks to gamesocket_server;
