"""State colours come from the theme, through the stylesheet's component classes."""

from __future__ import annotations

from rich.color import Color
from textual.theme import Theme

from okstra_tui.states import COLOURS, LOOKS
from okstra_tui.widgets.stage_table import StageTable
from tests.tui.conftest import SIZE
from tests.tui.driving import board_ready, settle


async def test_the_badges_take_their_colours_from_the_theme(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        board = await board_ready(pilot)
        table = board.query_one(StageTable)
        ready = table.look("state--ready")
        assert ready.color == Color.parse(COLOURS["okstra-ready"]) and ready.bold
        done = table.look("state--done")
        assert done.color == Color.parse(COLOURS["okstra-done"]) and done.bold is False
        assert table.look("okstra--ready").bold is None  # the colour alone
        badge = table.get_row("4")[4]  # stage 4 is ready
        assert badge.style == ready

        app.register_theme(
            Theme(name="okstra-test", primary="#0178D4", dark=True, variables={"okstra-ready": "#123456"})
        )
        app.theme = "okstra-test"
        await settle(pilot, lambda: table.look("state--ready").color == Color.parse("#123456"))
        assert board.look("okstra--ready").color == Color.parse("#123456")
        assert table.look("state--done").color == Color.parse(COLOURS["okstra-done"])  # the default stays


def test_every_look_is_in_the_stylesheet() -> None:
    from pathlib import Path

    import okstra_tui

    css = (Path(okstra_tui.__file__).parent / "app.tcss").read_text(encoding="utf-8")
    assert all(f".{name} {{" in css for name in LOOKS)
