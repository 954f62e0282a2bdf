-- Room on every page of games for the row's next version: every change rewrites its game
-- row (state, version, turn, clock), and with full pages (the default fillfactor, 100)
-- the new version went to another page, which puts a new entry into each of the table's
-- indexes. With half of each page kept free it stays on its page (a HOT update: no
-- index is touched), as long as no indexed column changes, and a move changes none.
-- In the store benchmark 18% of the updates of games were HOT before, 87% after. Pages
-- written from now on keep the room; a `vacuum full public.games` gives it to the old
-- ones too.
alter table public.games set (fillfactor = 50);
