// Connect Four rules shared by the peers' servers: 7 columns, 6 rows, red (seat 0)
// moves first, four in a row wins, a full board is a draw. Cells are row-major from
// the bottom row: cells[row * 7 + column], 0 empty, 1 red, 2 yellow.
export const COLUMNS = 7;
export const ROWS = 6;
const DIRECTIONS = [[0, 1], [1, 0], [1, 1], [1, -1]];

// The row a disc dropped into `column` lands on, or -1 when the move is illegal.
export function landingRow(cells, column) {
  if (!Number.isInteger(column) || column < 0 || column >= COLUMNS) return -1;
  for (let row = 0; row < ROWS; row++) {
    if (cells[row * COLUMNS + column] === 0) return row;
  }
  return -1;
}

// True when the disc at (row, column) is part of four or more in a line.
export function wins(cells, row, column) {
  const disc = cells[row * COLUMNS + column];
  for (const [dr, dc] of DIRECTIONS) {
    let run = 1;
    for (const sign of [1, -1]) {
      let r = row + dr * sign;
      let c = column + dc * sign;
      while (r >= 0 && r < ROWS && c >= 0 && c < COLUMNS && cells[r * COLUMNS + c] === disc) {
        run++;
        r += dr * sign;
        c += dc * sign;
      }
    }
    if (run >= 4) return true;
  }
  return false;
}
