-- Player profiles (PROTOCOL.md "Players and names"): a display name per user.
--
-- * Read: anyone (anon included): names are public information.
-- * Write: only through the server, as the user itself (gamesocket_player with the
--   user's claims: auth.uid() is the user): a user creates and renames their own row
--   and nobody else's. anon and authenticated (PostgREST clients) write nothing; the
--   server's own role reads only. Nobody deletes a profile.
-- * The name is 1..32 characters, not starting or ending with a space, without control
--   characters (the server checks it first, with a clear error: socket_server/profiles.py).
-- Ratings are not kept here (a table of their own).

create table public.profiles (
  user_id uuid primary key,
  name text not null check (
    char_length(name) between 1 and 32 and name = btrim(name) and name !~ '[[:cntrl:]]'
  ),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

alter table public.profiles enable row level security;
alter table public.profiles force row level security;

create policy "names are readable by anyone"
on public.profiles for select to anon, authenticated, gamesocket_player, gamesocket_server
using (true);

create policy "users create their own profile"
on public.profiles for insert to gamesocket_player
with check (user_id = (select auth.uid()));

create policy "users rename themselves only"
on public.profiles for update to gamesocket_player
using (user_id = (select auth.uid()))
with check (user_id = (select auth.uid()));

revoke all on public.profiles from public, anon, authenticated, gamesocket_player,
  gamesocket_server;
grant select on public.profiles to anon, authenticated, gamesocket_player, gamesocket_server;
grant insert (user_id, name) on public.profiles to gamesocket_player;
grant update (name, updated_at) on public.profiles to gamesocket_player;
