"""okstra's engine: projects, tasks, plans, the ledger, worktrees and reconcile.

Pure Python with no UI import, so that agents calling the CLI in loops pay only for
what each command needs. Submodules are imported by their users, never from here.
"""

__version__ = "0.1.0"
