"""A task shared through a git remote: its definition and plan, each machine's ledger
rows, the stage reservations and the task branch travel as refs under
`refs/okstra/share/` of the remote the project names (`okstra init --share REMOTE`).

- `machine`: this okstra home's machine id;
- `place`: which remote a project shares through, and the names of its refs;
- `objects`: files as git commits (no work tree, no index) and back;
- `journal`: what this machine last saw of the remote (the okstra home's `share/`);
- `tasks`: a task's definition and approved plan as a commit;
- `rows`: each machine's ledger rows as a commit chain, and importing the others';
- `reservations`: a stage taken as a ref created by an atomic push;
- `branch`: the task branch as the remote's head, only ever fast-forwarded;
- `sync`: fetch, import, publish; `status`.
"""
