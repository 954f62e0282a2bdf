// san.js: UCI moves to SAN from a FEN, for the page's AI thinking line (the server's
// move list is SAN already). A small legal-move generator: castling, en passant,
// promotion, disambiguation, "+" and "#". Checked against python-chess by the browser
// tests (tests/system/test_browser_web.py).

const FILES = "abcdefgh";
const KNIGHT = [[1, 2], [2, 1], [2, -1], [1, -2], [-1, -2], [-2, -1], [-2, 1], [-1, 2]];
const KING = [[1, 0], [1, 1], [0, 1], [-1, 1], [-1, 0], [-1, -1], [0, -1], [1, -1]];
const ROOK = [[1, 0], [-1, 0], [0, 1], [0, -1]];
const BISHOP = [[1, 1], [1, -1], [-1, 1], [-1, -1]];

const colorOf = (piece) => (piece === piece.toUpperCase() ? "w" : "b");
const square = (file, rank) => rank * 8 + file;
const fileOf = (sq) => sq % 8;
const rankOf = (sq) => Math.floor(sq / 8);
const name = (sq) => `${FILES[fileOf(sq)]}${rankOf(sq) + 1}`;
const onBoard = (file, rank) => file >= 0 && file < 8 && rank >= 0 && rank < 8;

function parseSquare(text) {
  const file = FILES.indexOf(text[0]);
  const rank = Number(text[1]) - 1;
  if (file < 0 || !(rank >= 0 && rank < 8)) throw new Error(`bad square ${text}`);
  return square(file, rank);
}

/** A position from FEN: `{board: [64 pieces or null, a1 first], turn, castling, ep, fullmove}`. */
export function parseFen(fen) {
  const [placement, turn = "w", castling = "-", ep = "-", , fullmove = "1"] = fen.trim().split(/\s+/);
  const board = new Array(64).fill(null);
  placement.split("/").forEach((row, i) => {
    let file = 0;
    for (const ch of row) {
      if (/\d/.test(ch)) file += Number(ch);
      else board[square(file++, 7 - i)] = ch;
    }
  });
  return { board, turn, castling: castling === "-" ? "" : castling, ep: ep === "-" ? -1 : parseSquare(ep), fullmove: Number(fullmove) || 1 };
}

/** Whether `sq` is attacked by a piece of colour `by`. */
function attacked(board, sq, by) {
  const f = fileOf(sq);
  const r = rankOf(sq);
  const is = (file, rank, types) => {
    if (!onBoard(file, rank)) return false;
    const piece = board[square(file, rank)];
    return piece !== null && colorOf(piece) === by && types.includes(piece.toLowerCase());
  };
  const pawnRank = by === "w" ? r - 1 : r + 1;
  if (is(f - 1, pawnRank, "p") || is(f + 1, pawnRank, "p")) return true;
  if (KNIGHT.some(([df, dr]) => is(f + df, r + dr, "n"))) return true;
  if (KING.some(([df, dr]) => is(f + df, r + dr, "k"))) return true;
  for (const [dirs, types] of [[ROOK, "rq"], [BISHOP, "bq"]]) {
    for (const [df, dr] of dirs) {
      let file = f + df;
      let rank = r + dr;
      while (onBoard(file, rank)) {
        const piece = board[square(file, rank)];
        if (piece !== null) {
          if (colorOf(piece) === by && types.includes(piece.toLowerCase())) return true;
          break;
        }
        file += df;
        rank += dr;
      }
    }
  }
  return false;
}

function kingSquare(board, color) {
  return board.findIndex((piece) => piece === (color === "w" ? "K" : "k"));
}

function inCheck(pos, color = pos.turn) {
  const king = kingSquare(pos.board, color);
  return king >= 0 && attacked(pos.board, king, color === "w" ? "b" : "w");
}

function pseudoMoves(pos) {
  const { board, turn } = pos;
  const enemy = turn === "w" ? "b" : "w";
  const moves = [];
  const add = (from, to, promo = "") => moves.push({ from, to, promo });
  for (let from = 0; from < 64; from += 1) {
    const piece = board[from];
    if (piece === null || colorOf(piece) !== turn) continue;
    const f = fileOf(from);
    const r = rankOf(from);
    const type = piece.toLowerCase();
    if (type === "p") {
      const dir = turn === "w" ? 1 : -1;
      const last = turn === "w" ? 7 : 0;
      const pawnTo = (to) => {
        if (rankOf(to) === last) for (const promo of "qrbn") add(from, to, promo);
        else add(from, to);
      };
      const one = square(f, r + dir);
      if (onBoard(f, r + dir) && board[one] === null) {
        pawnTo(one);
        const two = square(f, r + 2 * dir);
        if (r === (turn === "w" ? 1 : 6) && board[two] === null) add(from, two);
      }
      for (const df of [-1, 1]) {
        if (!onBoard(f + df, r + dir)) continue;
        const to = square(f + df, r + dir);
        if ((board[to] !== null && colorOf(board[to]) === enemy) || to === pos.ep) pawnTo(to);
      }
      continue;
    }
    const steps = { n: KNIGHT, k: KING }[type];
    const rays = { b: BISHOP, r: ROOK, q: [...ROOK, ...BISHOP] }[type];
    for (const [df, dr] of steps || rays) {
      let file = f + df;
      let rank = r + dr;
      while (onBoard(file, rank)) {
        const to = square(file, rank);
        if (board[to] !== null && colorOf(board[to]) === turn) break;
        add(from, to);
        if (board[to] !== null || steps) break;
        file += df;
        rank += dr;
      }
    }
    if (type === "k") addCastling(pos, from, add);
  }
  return moves;
}

function addCastling(pos, from, add) {
  const { board, turn, castling } = pos;
  const home = turn === "w" ? 0 : 7;
  const enemy = turn === "w" ? "b" : "w";
  if (from !== square(4, home) || attacked(board, from, enemy)) return;
  const sides = [
    [turn === "w" ? "K" : "k", 7, [5, 6], [5, 6]],
    [turn === "w" ? "Q" : "q", 0, [1, 2, 3], [3, 2]],
  ];
  for (const [right, rookFile, empty, passed] of sides) {
    if (!castling.includes(right)) continue;
    if (board[square(rookFile, home)] !== (turn === "w" ? "R" : "r")) continue;
    if (empty.some((file) => board[square(file, home)] !== null)) continue;
    if (passed.some((file) => attacked(board, square(file, home), enemy))) continue;
    add(from, square(passed[1], home));
  }
}

/** The position after a (legal) move `{from, to, promo}`. */
function play(pos, { from, to, promo }) {
  const board = pos.board.slice();
  const piece = board[from];
  const type = piece.toLowerCase();
  const white = pos.turn === "w";
  if (type === "p" && to === pos.ep && board[to] === null) board[square(fileOf(to), rankOf(from))] = null;
  if (type === "k" && Math.abs(fileOf(to) - fileOf(from)) === 2) {
    const home = rankOf(from);
    const [rookFrom, rookTo] = fileOf(to) === 6 ? [7, 5] : [0, 3];
    board[square(rookTo, home)] = board[square(rookFrom, home)];
    board[square(rookFrom, home)] = null;
  }
  board[to] = promo ? (white ? promo.toUpperCase() : promo) : piece;
  board[from] = null;
  let castling = pos.castling;
  const lose = (rights) => {
    for (const right of rights) castling = castling.replace(right, "");
  };
  if (type === "k") lose(white ? "KQ" : "kq");
  for (const [sq, right] of [[0, "Q"], [7, "K"], [56, "q"], [63, "k"]]) {
    if (from === sq || to === sq) lose(right);
  }
  const ep = type === "p" && Math.abs(rankOf(to) - rankOf(from)) === 2 ? (from + to) / 2 : -1;
  return { board, turn: white ? "b" : "w", castling, ep, fullmove: pos.fullmove + (white ? 0 : 1) };
}

/** Every legal move of the side to move, as `{from, to, promo}`. */
export function legalMoves(pos) {
  return pseudoMoves(pos).filter((move) => !inCheck(play(pos, move), pos.turn));
}

function parseUci(uci) {
  const text = String(uci);
  if (!/^[a-h][1-8][a-h][1-8][qrbn]?$/.test(text)) throw new Error(`not a UCI move: ${text}`);
  return { from: parseSquare(text.slice(0, 2)), to: parseSquare(text.slice(2, 4)), promo: text[4] || "" };
}

/** SAN of one UCI move in `pos`, and the position after it: `{san, next}`. */
export function sanOf(pos, uci) {
  const wanted = parseUci(uci);
  const legal = legalMoves(pos);
  const move = legal.find((m) => m.from === wanted.from && m.to === wanted.to && m.promo === wanted.promo);
  if (!move) throw new Error(`illegal move ${uci}`);
  const piece = pos.board[move.from];
  const type = piece.toLowerCase();
  const capture = pos.board[move.to] !== null || (type === "p" && move.to === pos.ep);
  let san;
  if (type === "k" && Math.abs(fileOf(move.to) - fileOf(move.from)) === 2) {
    san = fileOf(move.to) === 6 ? "O-O" : "O-O-O";
  } else if (type === "p") {
    san = `${capture ? `${FILES[fileOf(move.from)]}x` : ""}${name(move.to)}${move.promo ? `=${move.promo.toUpperCase()}` : ""}`;
  } else {
    const rivals = legal.filter((m) => m.to === move.to && m.from !== move.from && pos.board[m.from] === piece);
    let which = "";
    if (rivals.length) {
      if (!rivals.some((m) => fileOf(m.from) === fileOf(move.from))) which = FILES[fileOf(move.from)];
      else if (!rivals.some((m) => rankOf(m.from) === rankOf(move.from))) which = String(rankOf(move.from) + 1);
      else which = name(move.from);
    }
    san = `${type.toUpperCase()}${which}${capture ? "x" : ""}${name(move.to)}`;
  }
  const next = play(pos, move);
  if (inCheck(next)) san += legalMoves(next).length ? "+" : "#";
  return { san, next };
}

/**
 * A line of UCI moves from `fen` in SAN, numbered like a move list:
 * `{moves: ["Nf3", ...], text: "12... Nf6 13. Bg5"}`. Conversion stops at the first
 * move that is not legal (`rest` keeps those in UCI).
 */
export function lineToSan(fen, ucis) {
  let pos = parseFen(fen);
  const moves = [];
  const parts = [];
  let i = 0;
  for (; i < ucis.length; i += 1) {
    let step;
    try {
      step = sanOf(pos, ucis[i]);
    } catch {
      break;
    }
    if (pos.turn === "w") parts.push(`${pos.fullmove}. ${step.san}`);
    else parts.push(i === 0 ? `${pos.fullmove}... ${step.san}` : step.san);
    moves.push(step.san);
    pos = step.next;
  }
  const rest = ucis.slice(i).map(String);
  return { moves, rest, text: [...parts, ...rest].join(" ") };
}
