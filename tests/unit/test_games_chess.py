import time

import pytest

from games import ChessState, IllegalMove

KIWIPETE = "r3k2r/p1ppqpb1/bn2pnp1/3PN3/1p2P3/2N2Q1p/PPPBBPPP/R3K2R w KQkq - 0 1"


def play(*moves: str, fen: str | None = None) -> ChessState:
    state = ChessState.initial({"fen": fen} if fen else None)
    for move in moves:
        state = state.apply(move)
    return state


def perft(state: ChessState, depth: int) -> int:
    if depth == 0:
        return 1
    return sum(perft(state.apply(move), depth - 1) for move in state.legal_moves())


@pytest.mark.parametrize(("fen", "nodes"), [(None, 8_902), (KIWIPETE, 97_862)])
def test_perft_depth_3_through_apply(fen: str | None, nodes: int) -> None:
    started = time.perf_counter()
    assert perft(play(fen=fen), 3) == nodes
    # apply() sits on the server's hot path: a cached board must keep it cheap.
    assert time.perf_counter() - started < 30


# (start FEN or None, moves, winner, reason)
ENDINGS = [
    pytest.param(None, ["f3", "e5", "g4", "Qh4#"], "black", "checkmate", id="fools-mate"),
    pytest.param(
        "k7/8/1K6/8/8/8/8/7R w - - 99 80", ["Rh8#"], "white", "checkmate", id="mate-beats-50"
    ),
    pytest.param("k7/8/8/1Q6/8/8/8/7K w - - 0 1", ["Qb6"], None, "stalemate", id="stalemate"),
    pytest.param(
        "4k3/8/8/8/8/8/3p4/4K3 w - - 0 1", ["Kxd2"], None, "insufficient_material", id="kk"
    ),
    pytest.param(
        "4k3/8/8/8/8/8/1n6/2B1K3 w - - 0 1", ["Bxb2"], None, "insufficient_material", id="kb-k"
    ),
    pytest.param(
        None,
        ["Nf3", "Nf6", "Ng1", "Ng8", "Nf3", "Nf6", "Ng1", "Ng8"],
        None,
        "threefold_repetition",
        id="threefold",
    ),
    pytest.param("4k3/8/8/8/8/8/8/R3K3 w - - 99 80", ["Ra2"], None, "fifty_moves", id="fifty"),
]


@pytest.mark.parametrize(("fen", "moves", "winner", "reason"), ENDINGS)
def test_every_ending(fen: str | None, moves: list[str], winner: str | None, reason: str) -> None:
    before = play(*moves[:-1], fen=fen)
    assert before.result is None
    state = before.apply(moves[-1])
    assert state.result is not None
    assert (state.result.winner, state.result.reason) == (winner, reason)
    assert state.status == "finished"
    assert state.turn is None
    assert state.legal_moves() == []
    # A reload judges the same (the repetition needs the whole move list).
    assert ChessState.from_json(state.to_json()).result == state.result


def test_repetition_is_not_judged_on_twofold() -> None:
    state = play("Nf3", "Nf6", "Ng1", "Ng8", "Nf3", "Nf6", "Ng1")
    assert state.result is None
    assert state.turn == "black"


@pytest.mark.parametrize(
    ("moves", "raw", "reason"),
    [
        ([], 42, "must be a string"),
        ([], None, "must be a string"),
        ([], ["e2e4"], "must be a string"),
        ([], "e2e5", "e2e5 is not a legal move"),
        ([], "e7e5", "not a legal move"),
        ([], "Ke2", "Ke2 is not a legal move"),
        ([], "hello", "neither UCI nor SAN"),
        ([], "", "neither UCI nor SAN"),
        (["f3", "e5", "g4", "Qh4#"], "e2e4", "already over"),
    ],
)
def test_illegal_moves_are_refused_with_a_reason(
    moves: list[str], raw: object, reason: str
) -> None:
    state = play(*moves)
    with pytest.raises(IllegalMove, match=reason):
        state.apply(raw)
    with pytest.raises(IllegalMove, match=reason):
        state.parse_move(raw)


def test_ambiguous_san_is_refused_and_disambiguated_san_accepted() -> None:
    state = play(fen="4k3/8/8/8/8/8/8/1N2KN2 w - - 0 1")
    with pytest.raises(IllegalMove, match="Nd2 is ambiguous"):
        state.apply("Nd2")
    assert state.parse_move("Nbd2") == "b1d2"
    assert state.parse_move("Nfd2") == "f1d2"


def test_notations_promotion_and_castling() -> None:
    state = play(fen="4k3/1P6/8/8/8/8/8/R3K2R w KQ - 0 1")
    assert state.parse_move("e1h1") == "e1g1"  # king takes rook, as lichess accepts
    assert state.apply("e1a1").history == ("e1c1",)
    with pytest.raises(IllegalMove, match="0000 is not a legal move"):
        state.parse_move("0000")
    assert state.parse_move("b8=Q") == "b7b8q"
    assert state.parse_move("b7b8n") == "b7b8n"
    assert state.parse_move("O-O") == "e1g1"
    assert state.parse_move(" O-O-O ") == "e1c1"
    with pytest.raises(IllegalMove, match="not a legal move"):
        state.parse_move("b7b8")  # a promotion needs its piece
    promoted = state.apply("b7b8q")
    assert promoted.last_move() == {"seat": "white", "move": "b7b8q", "san": "b8=Q+"}
    assert promoted.board()["check"] is True


def test_board_san_last_move_and_round_trip() -> None:
    state = play("e4", "e7e5", "Nf3")
    assert state.history == ("e2e4", "e7e5", "g1f3")
    assert state.board() == {
        "fen": "rnbqkbnr/pppp1ppp/8/4p3/4P3/5N2/PPPP1PPP/RNBQKB1R b KQkq - 1 2",
        "san": ["e4", "e5", "Nf3"],
        "check": False,
    }
    assert state.last_move() == {"seat": "white", "move": "g1f3", "san": "Nf3"}
    assert state.move_san("b8c6") == "Nc6"
    assert state.turn == "black"
    reloaded = ChessState.from_json(state.to_json())
    assert reloaded == state
    assert reloaded.board() == state.board()
    assert reloaded.legal_moves() == state.legal_moves()


def test_san_list_is_kept_across_applies_after_a_reload() -> None:
    reloaded = ChessState.from_json(play("d4", "d5").to_json())
    assert reloaded.board()["san"] == ["d4", "d5"]
    after = reloaded.apply("c4").apply("dxc4")
    assert after.board()["san"] == ["d4", "d5", "c4", "dxc4"]


def test_apply_is_pure() -> None:
    start = play("e4")
    after = start.apply("c5")
    assert start.board()["san"] == ["e4"]
    assert start.turn == "black"
    assert after.turn == "white"
    assert "c7c5" in start.legal_moves()


def test_black_to_move_in_the_start_fen() -> None:
    state = play(fen="4k3/8/8/8/8/8/4P3/4K3 b - - 0 1")
    assert state.first_seat_index() == 1
    assert state.turn == "black"
    state = state.apply("Kd7")
    assert state.last_move() == {"seat": "black", "move": "e8d7", "san": "Kd7"}
    assert state.turn == "white"


@pytest.mark.parametrize(
    ("fen", "message"),
    [
        ("not a fen", "invalid FEN"),
        ("8/8/8/8/8/8/8/8 w - - 0 1", "no white king"),
        ("4k3/8/8/8/8/8/8/4K3 x - - 0 1", "invalid FEN"),
        ("4k3/8/8/8/8/8/8/4QK2 w - - 0 1", "invalid FEN.*opposite check"),
        ("k7/8/1Q6/8/8/8/8/7K b - - 0 1", "already over.*stalemate"),
        ("k7/1Q6/1K6/8/8/8/8/8 b - - 0 1", "already over.*checkmate"),
        ("4k3/8/8/8/8/8/8/4K3 w - - 0 1", "already over.*insufficient_material"),
        ("4k3/8/8/8/8/8/8/R3K3 w - - 100 80", "already over.*fifty_moves"),
        (42, "must be a string"),
    ],
)
def test_bad_start_fens_are_refused(fen: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ChessState.initial({"fen": fen})


def test_unknown_options_are_refused_and_server_options_ignored() -> None:
    with pytest.raises(ValueError, match="unknown option"):
        ChessState.initial({"variant": "960"})
    assert ChessState.initial({"ai_delay_ms": 0}) == ChessState.initial()


@pytest.mark.parametrize(
    ("moves", "finish", "result_tag"),
    [
        (["f3", "e5", "g4", "Qh4#"], None, "0-1"),
        (["e4"], None, "*"),
        (["e4"], ("white", "resignation"), "1-0"),
        (["e4"], ("black", "resignation"), "0-1"),
        (["e4"], (None, "draw_agreed"), "1/2-1/2"),
        (["e4"], (None, "aborted"), "*"),
        (["Nf3", "Nf6", "Ng1", "Ng8", "Nf3", "Nf6", "Ng1", "Ng8"], None, "1/2-1/2"),
    ],
)
def test_pgn_result_tag(
    moves: list[str], finish: tuple[str | None, str] | None, result_tag: str
) -> None:
    state = play(*moves)
    if finish is not None:
        state = state.finish(*finish)
        assert state.result is not None
        assert (state.result.winner, state.result.reason) == finish
        assert state.legal_moves() == []
    text = state.pgn({"White": "Ann", "Event": "Test"})
    assert f'[Result "{result_tag}"]' in text
    assert '[White "Ann"]' in text
    assert '[Event "Test"]' in text
    assert "SetUp" not in text
    assert text.rstrip().endswith(result_tag)
    assert "1. " + state.board()["san"][0] in text


def test_pgn_from_a_custom_start_position() -> None:
    fen = "4k3/8/8/8/8/8/4P3/4K3 b - - 0 1"
    text = play("Kd7", "e4", fen=fen).pgn()
    assert '[SetUp "1"]' in text
    assert f'[FEN "{fen}"]' in text
    assert "1... Kd7 2. e4 *" in text
