// The bench's boardgame.io clients, on socket.io-client (the library boardgame.io's
// own SocketIO client transport wraps, speaking the same events): players and
// spectators of the connect4 game in server.mjs, for bench/peers/worker.mjs. A
// version is the state's _stateID; a player's move is acknowledged by the `update`
// that carries the next _stateID back to it.
import { randomUUID } from 'node:crypto';
import { io } from 'socket.io-client';

const OPTIONS = { transports: ['websocket'], forceNew: true, reconnection: false, timeout: 30000 };

function connect(base, matchID, playerID, onState) {
  const socket = io(`${base}/connect4`, OPTIONS);
  return new Promise((resolve, reject) => {
    socket.on('connect_error', reject);
    socket.on('connect', () => socket.emit('sync', matchID, playerID, undefined, 2));
    socket.on('sync', (_match, { state }) => {
      onState(state);
      resolve(socket);
    });
    socket.on('update', (_match, state) => onState(state));
  });
}

export async function openPlayer(base, gameId, seat) {
  const matchID = gameId ?? randomUUID();
  const playerID = String(seat);
  let latest = null;
  let waiters = [];
  const socket = await connect(base, matchID, playerID, (state) => {
    latest = state;
    waiters = waiters.filter(([goal, done]) => (goal <= state._stateID ? done() : true));
  });
  const seen = (goal) => (latest._stateID >= goal ? Promise.resolve()
    : new Promise((done) => waiters.push([goal, done])));
  return {
    gameId: matchID,
    seat,
    get version() { return latest._stateID; },
    seen,
    async move(column, _id, expected) {
      const action = { type: 'MAKE_MOVE', payload: { type: 'drop', args: [column], playerID } };
      socket.emit('update', action, expected, matchID, playerID);
      await seen(expected + 1);
      return expected + 1;
    },
    status: () => (latest.ctx.gameover ? 'finished' : 'active'),
    close: async () => socket.close(),
  };
}

export async function openSpectator(base, gameId, onVersion, onEnd) {
  const socket = await connect(base, gameId, null, (state) => onVersion(state._stateID));
  socket.on('disconnect', () => onEnd());
  return { close: async () => socket.close() };
}
