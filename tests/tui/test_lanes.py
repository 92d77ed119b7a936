"""The lanes: a row of card widgets per stage group; a change repaints only its cards."""

from __future__ import annotations

from okstra_tui.widgets.lanes import LanesView, StageCard
from okstra_tui.widgets.stage_table import StageTable
from tests.tui.conftest import SIZE
from tests.tui.driving import board_ready, settle


async def test_moving_the_selection_repaints_two_cards(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        board = await board_ready(pilot)
        lanes = board.query_one(LanesView)
        cards = {card.stage: card for card in lanes.query(StageCard)}
        assert sorted(cards) == [1, 2, 3, 4, 5, 6]
        assert [[card.stage for card in lane.query(StageCard)] for lane in lanes.query(".lane")] == [
            [1],
            [2, 3, 4],
            [5, 6],
        ]
        before = {n: card.shows for n, card in cards.items()}
        await pilot.press("up")  # from stage 4 (the auto stage) to 3
        await settle(pilot, lambda: board.query_one(StageTable).selected_stage == 3)
        changed = {n for n, card in cards.items() if card.shows != before[n]}
        assert changed == {3, 4}
        assert lanes.cards[3].selected and not lanes.cards[4].selected
        assert set(lanes.query(StageCard)) == set(cards.values())  # the same widgets, repainted
