"""okstra's Textual terminal UI (over okstra_engine)."""
