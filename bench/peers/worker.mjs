// A load-generator process for a Node peer of the bench (Colyseus, boardgame.io).
//   node worker.mjs <adapter.mjs> <server base url>
// It takes one JSON command a line on stdin and answers each with one JSON line on
// stdout, like bench/workers.py does over its pipe for the Python targets:
//   {"cmd": "games", "n": 1, "seats": 2}      open n games with their players seated
//   {"cmd": "play", "line": [...], "interval_ms": 100}   pace the line on game 0
//   {"cmd": "race", "line": [...]}           play the line on every game, each move
//                                            sent once the previous one is acked
//   {"cmd": "spectate", "games": [...]}      one spectator socket per listed game id
//   {"cmd": "collect", "last": v, "wait": s} wait (bounded) until every spectator saw v
//   {"cmd": "close"}
// The adapter speaks the peer's own protocol through its official client library.
// Times are process.hrtime.bigint(): CLOCK_MONOTONIC, as Python's time.monotonic_ns().
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';

const CONNECT_CONCURRENCY = 64;
const [adapterPath, base] = process.argv.slice(2);
const adapter = await import(pathToFileURL(resolve(adapterPath)).href);
const now = () => Number(process.hrtime.bigint());
const sleep = (ms) => new Promise((done) => setTimeout(done, Math.max(0, ms)));
const games = [];
const spectators = [];

async function bounded(items, limit, job) {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const index = next++;
      await job(items[index], index);
    }
  });
  await Promise.all(lanes);
}

async function openGames({ n, seats }) {
  const opened = [];
  await bounded(Array.from({ length: n }), CONNECT_CONCURRENCY, async () => {
    const first = await adapter.openPlayer(base, null, 0);
    const players = [first];
    if (seats > 1) players.push(await adapter.openPlayer(base, first.gameId, 1));
    opened.push({ id: first.gameId, players });
  });
  games.push(...opened);
  return { ids: opened.map((game) => game.id) };
}

async function play({ line, interval_ms: interval }) {
  const { players } = games[0];
  const start = players[0].version;
  const began = Date.now();
  const sent = [];
  const acks = [];
  for (let ply = 0; ply < line.length; ply++) {
    await sleep(began + ply * interval - Date.now());
    const mover = players[ply % 2];
    await mover.seen(start + ply);
    const at = now();
    acks.push(mover.move(line[ply], `m${ply}`, start + ply).then((version) => sent.push([version, at])));
  }
  await Promise.all(acks);
  await Promise.race([players[0].seen(start + line.length), sleep(5000)]);
  return { sent, status: players[0].status() };
}

async function race({ line }) {
  const began = now();
  const cpu = process.cpuUsage();
  const latencies = [];
  const finals = games.map(({ players }) => players[0].version + line.length);
  await Promise.all(games.map(async ({ players }, gameNo) => {
    const start = players[0].version;
    for (let ply = 0; ply < line.length; ply++) {
      const mover = players[ply % 2];
      await mover.seen(start + ply);
      const at = now();
      await mover.move(line[ply], `g${gameNo}p${ply}`, start + ply);
      latencies.push(now() - at);
    }
  }));
  const seconds = (now() - began) / 1e9;
  const used = process.cpuUsage(cpu);
  await Promise.all(games.map(({ players }, i) => Promise.race([players[0].seen(finals[i]),
    sleep(5000)])));
  const finished = games.filter(({ players }) => players[0].status() === 'finished').length;
  return { moves: latencies.length, seconds, latencies, finished,
    cpu_seconds: (used.user + used.system) / 1e6 };
}

class Spectator {
  constructor() {
    this.base = null;
    this.last = null;
    this.gaps = 0;
    this.closed = false;
    this.arrivals = [];
    this.goal = null;
    this.reached = null;
  }

  update(version, arrived) {
    if (this.base === null) {
      this.base = this.last = version;
      return;
    }
    if (version === this.last) return; // the same state told twice (joined, then synced)
    if (version !== this.last + 1) this.gaps++;
    this.last = version;
    this.arrivals.push([version, arrived]);
    if (this.goal !== null && version >= this.goal) this.reached?.();
  }

  end() {
    this.closed = true;
    this.reached?.();
  }

  until(goal, ms) {
    this.goal = goal;
    if (this.closed || (this.last ?? 0) >= goal) return Promise.resolve();
    return Promise.race([new Promise((done) => { this.reached = done; }), sleep(ms)]);
  }
}

async function spectate({ games: ids }) {
  const errors = [];
  let open = 0;
  await bounded(ids, CONNECT_CONCURRENCY, async (gameId) => {
    const spectator = new Spectator();
    try {
      spectator.socket = await adapter.openSpectator(base, gameId,
        (version) => spectator.update(version, now()), () => spectator.end());
      spectators.push(spectator);
      open++;
    } catch (error) {
      errors.push(String(error?.message ?? error));
    }
  });
  return { open, failed: errors.length, errors: errors.slice(0, 5) };
}

async function collect({ last, wait }) {
  await Promise.all(spectators.map((s) => s.until(last, wait * 1000)));
  const arrivals = {};
  let complete = 0;
  for (const s of spectators) {
    const versions = s.arrivals.map(([version]) => version);
    const expected = Array.from({ length: Math.max(0, last - s.base) }, (_, i) => s.base + 1 + i);
    if (s.gaps === 0 && versions.length === expected.length
        && versions.every((v, i) => v === expected[i])) complete++;
    for (const [version, arrived] of s.arrivals) (arrivals[version] ??= []).push(arrived);
    s.arrivals = [];
  }
  const cpu = process.cpuUsage();
  return { cpu_seconds: (cpu.user + cpu.system) / 1e6, sockets: spectators.length, complete,
    gaps: spectators.reduce((sum, s) => sum + s.gaps, 0), resyncs: 0,
    closed: spectators.filter((s) => s.closed).length, arrivals };
}

async function close() {
  const sockets = [...spectators.map((s) => s.socket),
    ...games.flatMap((game) => game.players)];
  await Promise.all(sockets.map((socket) => Promise.race([socket.close(), sleep(5000)])));
  return { closed: sockets.length };
}

const COMMANDS = { games: openGames, play, race, spectate, collect, close };
const input = createInterface({ input: process.stdin });
for await (const text of input) {
  const command = JSON.parse(text);
  let reply;
  try {
    reply = await COMMANDS[command.cmd](command);
  } catch (error) {
    reply = { error: String(error?.stack ?? error) };
  }
  process.stdout.write(`${JSON.stringify(reply)}\n`);
  if (command.cmd === 'close') break;
}
process.exit(0);
