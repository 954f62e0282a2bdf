// The bench's Colyseus clients, on the official SDK (@colyseus/sdk): players and
// spectators of the connect4 room in server.mjs, for bench/peers/worker.mjs.
import { Client } from '@colyseus/sdk';

const clients = new Map();
const clientFor = (base) => {
  if (!clients.has(base)) clients.set(base, new Client(base));
  return clients.get(base);
};

// A promise per awaited version, resolved as states arrive.
class Versions {
  constructor() {
    this.version = -1;
    this.waiters = [];
  }

  advance(version) {
    this.version = version;
    this.waiters = this.waiters.filter(([goal, done]) => (goal <= version ? done() : true));
  }

  seen(goal) {
    if (this.version >= goal) return Promise.resolve();
    return new Promise((done) => this.waiters.push([goal, done]));
  }
}

export async function openPlayer(base, gameId, seat) {
  const client = clientFor(base);
  const room = gameId === null ? await client.create('connect4', {})
    : await client.joinById(gameId, {});
  const versions = new Versions();
  const acks = new Map();
  room.onStateChange((state) => versions.advance(state.version));
  room.onMessage('seat', () => {});
  room.onMessage('ack', ({ ref, version }) => {
    acks.get(ref)?.resolve(version);
    acks.delete(ref);
  });
  if (room.state?.version !== undefined) versions.advance(room.state.version);
  room.onMessage('error', ({ ref, code }) => {
    acks.get(ref)?.reject(new Error(`move refused: ${code}`));
    acks.delete(ref);
  });
  await versions.seen(0);
  return {
    gameId: room.roomId,
    seat,
    get version() { return versions.version; },
    seen: (version) => versions.seen(version),
    move(column, id) {
      return new Promise((resolve, reject) => {
        acks.set(id, { resolve, reject });
        room.send('move', { id, column });
      });
    },
    status: () => room.state.status,
    close: () => room.leave(true),
  };
}

export async function openSpectator(base, gameId, onVersion, onEnd) {
  const room = await clientFor(base).joinById(gameId, { spectate: true });
  room.onStateChange((state) => onVersion(state.version));
  room.onMessage('seat', () => {});
  room.onLeave(() => onEnd());
  if (room.state?.version !== undefined) onVersion(room.state.version);
  return { close: () => room.leave(true) };
}
