// The bench's boardgame.io 0.50 peer: a connect4 game on boardgame.io's Server with
// its socket.io transport and in-memory storage.
//   node server.mjs --port 8767
// A match comes into being when its first client syncs (the transport's own
// create-on-sync); players are "0" (red) and "1" (yellow), a spectator syncs with no
// playerID. The server is bound to --host like the other targets (Server().run()
// listens on every interface, so this listens on the transport's http server
// itself); the Lobby REST API is not mounted, nothing here uses it. GET /health
// answers 200 for the bench harness.
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { COLUMNS, ROWS, landingRow, wins } from '../connect4.mjs';

// boardgame.io ships CommonJS entry points as directories, which ESM cannot import.
const require = createRequire(import.meta.url);
const { Server } = require('boardgame.io/server');
const { INVALID_MOVE } = require('boardgame.io/core');

export const Connect4 = {
  name: 'connect4',
  setup: () => ({ cells: new Array(COLUMNS * ROWS).fill(0), last: null }),
  turn: { minMoves: 1, maxMoves: 1 },
  moves: {
    drop: ({ G, ctx }, column) => {
      const row = landingRow(G.cells, column);
      if (row < 0) return INVALID_MOVE;
      G.cells[row * COLUMNS + column] = Number(ctx.currentPlayer) + 1;
      G.last = [row, column];
      return undefined;
    },
  },
  endIf: ({ G, ctx }) => {
    if (G.last && wins(G.cells, G.last[0], G.last[1])) return { winner: ctx.currentPlayer };
    if (G.cells.every((cell) => cell !== 0)) return { draw: true };
    return undefined;
  },
};

const { values } = parseArgs({ options: { port: { type: 'string', default: '8767' },
  host: { type: 'string', default: '127.0.0.1' } } });
const server = Server({ games: [Connect4], origins: [/127\.0\.0\.1:\d+/] });
server.app.use(async (ctx, next) => {
  if (ctx.path !== '/health') return next();
  ctx.body = { status: 'ok' };
  return undefined;
});
server.app.server.listen(Number(values.port), values.host, 4096);
