"""Chess agents: the built-in engine and Stockfish, through `best_move` and `search`."""

from __future__ import annotations

import random
import time

import chess
import pytest

import agents
from agents.base import SearchInfo, SearchLimit
from agents.chess import ChessAgent, best_move, skill_level, stockfish_path
from agents.chess_engine import MATE_BOUND, Engine, evaluate, move_delta
from games import ChessState
from tests.conftest import require

ENGINES = ["builtin", "stockfish"]

MATE_IN_ONE = [
    "6k1/5ppp/8/8/8/8/5PPP/R5K1 w - - 0 1",  # back rank: Ra8#
    "r1bqkbnr/pppp1ppp/2n5/4p3/2B1P3/5Q2/PPPP1PPP/RNB1K1NR w KQkq - 0 4",  # Qxf7#
    "rnbqkbnr/pppp1ppp/8/4p3/6P1/5P2/PPPPP2P/RNBQKBNR b KQkq - 0 2",  # Qh4#
    "7k/8/8/8/8/8/1Q6/K5R1 w - - 0 1",  # Qh2#
]
# Win At Chess positions marked "dm 2": mate in two moves.
MATE_IN_TWO = [
    "2rr3k/pp3pp1/1nnqbN1p/3pN3/2pP4/2P3Q1/PPB4P/R4RK1 w - - 0 1",
    "5k2/6pp/p1qN4/1p1p4/3P4/2PKP2Q/PP3r2/3R4 b - - 0 1",
    "7k/pp4np/2p3p1/3pN1q1/3P4/Q7/1r3rPP/2R2RK1 w - - 0 1",
    "r1bq1r1k/1pp1Np1p/p2p2pQ/4R3/n7/8/PPPP1PPP/R1B3K1 w - - 0 1",
]


@pytest.fixture(scope="module", autouse=True)
def _stop_engines():
    yield
    agents.shutdown()


def need(engine: str) -> None:
    if engine == "stockfish":
        require(stockfish_path() is not None, "Stockfish")


def mates_in_one(board: chess.Board) -> bool:
    for move in board.legal_moves:
        board.push(move)
        mate = board.is_checkmate()
        board.pop()
        if mate:
            return True
    return False


def forces_mate_in_two(fen: str, uci: str) -> bool:
    """After `uci`, every defence allows a mate in one (or it is mate already)."""
    board = chess.Board(fen)
    board.push_uci(uci)
    if board.is_checkmate():
        return True
    for reply in list(board.legal_moves):
        board.push(reply)
        ok = mates_in_one(board)
        board.pop()
        if not ok:
            return False
    return board.legal_moves.count() > 0


def test_incremental_evaluation_matches_a_full_recount() -> None:
    """move_delta must agree with evaluate across captures, castling, ep and promotion."""
    rng = random.Random(11)
    positions = [
        chess.Board(),
        chess.Board("r3k2r/pPppqpb1/bn2pnp1/3PN3/1p2P3/2N2Q1p/PPPBBPPP/R3K2R w KQkq - 0 1"),
        chess.Board("rnbqkbnr/ppp1p1pp/8/3pPp2/8/8/PPPP1PPP/RNBQKBNR w KQkq f6 0 3"),
    ]
    checked = 0
    for start in positions:
        for _ in range(30):
            board = start.copy()
            for _ in range(40):
                moves = list(board.legal_moves)
                if not moves:
                    break
                move = rng.choice(moves)
                expected = evaluate(board) + move_delta(board, move)
                board.push(move)
                assert evaluate(board) == expected, (board.fen(), move)
                checked += 1
    assert checked > 2000


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("fen", MATE_IN_ONE)
def test_finds_mate_in_one(engine: str, fen: str) -> None:
    need(engine)
    board = chess.Board(fen)
    board.push_uci(best_move(fen, time_limit=1.0, engine=engine))
    assert board.is_checkmate()


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("fen", MATE_IN_TWO)
def test_finds_mate_in_two(engine: str, fen: str) -> None:
    need(engine)
    assert forces_mate_in_two(fen, best_move(fen, time_limit=2.0, engine=engine))


@pytest.mark.parametrize("engine", ENGINES)
def test_always_returns_a_legal_move(engine: str) -> None:
    """Random positions from random games, including checks, promotions and endings."""
    need(engine)
    rng = random.Random(23)
    tried = 0
    while tried < 12:
        board = chess.Board()
        for _ in range(rng.randrange(10, 120)):
            moves = list(board.legal_moves)
            if not moves:
                break
            board.push(rng.choice(moves))
        if board.is_game_over():
            continue
        move = chess.Move.from_uci(best_move(board.fen(), time_limit=0.05, engine=engine))
        assert board.is_legal(move), board.fen()
        tried += 1


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("limit", [0.3, 1.0])
def test_honours_the_time_limit(engine: str, limit: float) -> None:
    need(engine)
    # A quiet middle-game position with no quick mate: the search uses its whole budget.
    fen = "r1bq1rk1/pp2bppp/2n1pn2/3p4/2PP4/2N2N2/PP2BPPP/R1BQ1RK1 w - - 0 8"
    best_move(fen, time_limit=0.05, engine=engine)  # start the engine outside the clock
    start = time.monotonic()
    best_move(fen, time_limit=limit, engine=engine)
    elapsed = time.monotonic() - start
    assert 0.8 * limit <= elapsed <= 1.2 * limit, elapsed


def test_builtin_engine_takes_a_repetition_when_losing() -> None:
    # White is a queen down; both sides have shuffled a knight. Returning the knight
    # to g1 repeats a position of the game, which the search scores as a draw.
    board = chess.Board("rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNB1KBNR w KQkq - 0 1")
    for uci in ("g1f3", "b8c6", "f3g1", "c6b8", "g1f3", "b8c6"):
        board.push_uci(uci)
    before = (board.fen(), list(board.move_stack))
    move, progress = Engine(board, max_depth=4).search()
    assert move.uci() == "f3g1"
    assert progress.score == 0
    assert (board.fen(), list(board.move_stack)) == before


def test_builtin_engine_stopped_by_the_clock_leaves_the_board_intact() -> None:
    board = chess.Board("r1bq1rk1/pp2bppp/2n1pn2/3p4/2PP4/2N2N2/PP2BPPP/R1BQ1RK1 w - - 0 8")
    fen = board.fen()
    move, progress = Engine(board, deadline=time.monotonic() + 0.3).search()
    assert board.fen() == fen and not board.move_stack
    assert board.is_legal(move) and progress.depth >= 2


async def search_agent(agent: ChessAgent, fen: str, limit: SearchLimit) -> tuple[str, list]:
    state = ChessState.initial({"fen": fen})
    seen: list[SearchInfo] = []
    result = await agent.search(state, limit=limit, on_progress=seen.append)
    assert chess.Move.from_uci(result.move) in chess.Board(fen).legal_moves
    assert seen, "the final progress must always be reported"
    assert seen[-1] == result.info
    return result.move, seen


@pytest.mark.parametrize("engine", ENGINES)
async def test_agent_reports_sane_progress(engine: str) -> None:
    need(engine)
    fen = MATE_IN_TWO[0]
    # A depth limit, not a time one: the result must not depend on the machine's load.
    start = time.monotonic()
    move, seen = await search_agent(
        ChessAgent(10, engine=engine), fen, SearchLimit(time=30.0, depth=10)
    )
    elapsed = time.monotonic() - start
    assert forces_mate_in_two(fen, move)
    final = seen[-1]
    assert final.depth >= 1 and final.nodes > 0
    assert final.score >= MATE_BOUND  # a mate, from the side to move's view
    assert final.pv[0] == move
    board = chess.Board(fen)
    for uci in final.pv:  # the principal variation is a legal line
        board.push_uci(uci)
    depths = [info.depth for info in seen]
    assert depths == sorted(depths)
    assert len(seen) <= elapsed / 0.25 + 2  # a few reports a second at most


@pytest.mark.parametrize("engine", ENGINES)
async def test_agent_scores_from_the_side_to_move(engine: str) -> None:
    need(engine)
    # Black to move with an extra queen: positive for Black.
    fen = "4k3/8/8/8/3q4/8/8/4K3 b - - 0 1"
    _, seen = await search_agent(ChessAgent(10, engine=engine), fen, SearchLimit(time=0.3))
    assert seen[-1].score > 500


@pytest.mark.parametrize("level", [1, 3, 5, 7])
async def test_low_levels_are_weak_but_sensible(level: int) -> None:
    # Rxd5 wins a free queen: no amount of the weak levels' noise hides that.
    state = ChessState.initial({"fen": "4k3/8/8/3q4/8/8/8/3RK3 w - - 0 1"})
    for _ in range(3):
        assert (await ChessAgent(level, engine="builtin").search(state)).move == "d1d5"


async def test_agent_continues_a_game_with_its_history() -> None:
    state = ChessState.initial()
    for uci in ("e2e4", "e7e5", "g1f3"):
        state = state.apply(uci)
    agent = ChessAgent(3, engine="builtin")
    for _ in range(4):
        result = await agent.search(state)
        state = state.apply(result.move)
    assert len(state.history) == 7


def test_level_mapping() -> None:
    assert [skill_level(level) for level in (1, 5, 10)] == [0, 9, 20]
    with pytest.raises(ValueError):
        ChessAgent(11)
    assert agents.ChessAgent(4).level == 4
