"""okstra's widgets, one per module."""
