"""What the forms share (new task, register): a field the rules refuse is said on the
`#NAME-error` line under it and keeps the focus; editing the field clears that line; a
refusal the engine makes in a worker opens the error dialog, and the field named by
`refocus_after` has the focus again once the dialog closes."""

from __future__ import annotations

from textual.widgets import Input, Static


class FieldErrors:
    FIELDS: tuple[str, ...] = ()
    """The fields with an error line under them."""

    _refocus: str | None = None

    def hide_field_errors(self) -> None:
        for name in self.FIELDS:
            self.query_one(f"#{name}-error").display = False

    def show_field_error(self, name: str, text: str) -> None:
        error = self.query_one(f"#{name}-error", Static)
        error.update(text)
        error.display = True
        self.query_one(f"#{name}").focus()

    def refocus_after(self, name: str) -> None:
        self._refocus = name

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id in self.FIELDS:
            self.query_one(f"#{event.input.id}-error").display = False

    def on_screen_resume(self) -> None:
        if self._refocus is not None:
            self.query_one(f"#{self._refocus}").focus()
            self._refocus = None
