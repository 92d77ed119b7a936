"""Which remote a project shares its tasks through, and the names of the refs there.

`project.json` can be written by an agent, so its `shareRemote` is only ever a remote
name the person's repository config lists (`git remote`), never a URL or a path. A
project is known across clones by its folder's place in the repository (its prefix, ''
at the root), not by its id, which another clone's `init` may choose differently:

    refs/okstra/share/<place>/<GROUP>/<ID>/task              the task and its approved plan
    refs/okstra/share/<place>/<GROUP>/<ID>/ledger/<machine>  that machine's ledger rows
    refs/okstra/share/<place>/<GROUP>/<ID>/reserved/s<N>     stage N taken
    refs/okstra/share/<place>/<GROUP>/<ID>/head              the task branch after a handoff
    refs/okstra/stages/<place>/<GROUP>/<ID>/s<N>/<commit>    a done commit of stage N

A sync fetches the first four kinds into `refs/okstra/remote/<remote>/<place>/…`; only a
handoff fetches done commits, into `refs/okstra/fetched/<remote>/<place>/…` (a task key
holds a '-', so none of these folders is ever a task's pins `refs/okstra/<task_key>/`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from .. import git
from ..errors import OkstraError
from ..projects import Project
from ..slugs import TaskRef

REMOTE_ROOT = "refs/okstra/share"
LOCAL_ROOT = "refs/okstra/remote"
STAGES_ROOT = "refs/okstra/stages"
FETCHED_ROOT = "refs/okstra/fetched"


def place_key(prefix: str) -> str:
    """`root` for a project at the repository's root, else `sub-` and a digest of its
    folder (any folder name, even one git refuses in a ref)."""
    if not prefix:
        return "root"
    return "sub-" + hashlib.sha256(prefix.strip("/").encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Share:
    project: Project
    remote: str

    @property
    def repo(self) -> Path:
        return self.project.repo

    @property
    def place(self) -> str:
        return place_key(self.project.prefix)

    def remote_ref(self, ref: TaskRef, *parts: str) -> str:
        return "/".join((REMOTE_ROOT, self.place, ref.group, ref.id, *parts))

    def local_ref(self, ref: TaskRef, *parts: str) -> str:
        return "/".join((LOCAL_ROOT, self.remote, self.place, ref.group, ref.id, *parts))

    def local_of(self, remote_ref: str) -> str:
        return f"{LOCAL_ROOT}/{self.remote}/{remote_ref.removeprefix(REMOTE_ROOT + '/')}"

    def remote_stage(self, ref: TaskRef, stage: int, commit: str) -> str:
        return "/".join((STAGES_ROOT, self.place, ref.group, ref.id, f"s{stage}", commit))

    @property
    def stages_refspec(self) -> str:
        """The done commits machines pushed for the stages of this place's tasks: without
        them here, a stage done elsewhere could not be told merged or not, nor handed off."""
        return f"+{STAGES_ROOT}/{self.place}/*:{FETCHED_ROOT}/{self.remote}/{self.place}/*"

    @property
    def local_prefix(self) -> str:
        return f"{LOCAL_ROOT}/{self.remote}/{self.place}/"

    @property
    def refspec(self) -> str:
        """okstra's refs of this project's place, and nothing of the person's."""
        return f"+{REMOTE_ROOT}/{self.place}/*:{LOCAL_ROOT}/{self.remote}/{self.place}/*"


def check_remote_name(name: str, repo: Path | None = None) -> str:
    """`name` as a remote name okstra may use: no option, no URL or path, one the
    repository's config lists (when `repo` is given)."""
    if not name or name.startswith("-") or "\0" in name or ":" in name or "\\" in name or name != name.strip():
        raise OkstraError(f"{name!r} is not a git remote name", "name one of: git remote")
    if repo is not None:
        known = git.remote_names(repo)
        if name not in known:
            raise OkstraError(
                f"the repository has no remote named {name!r} (it has: {', '.join(known) or 'none'})",
                f"add it first (git remote add {name} URL), or name one of those",
            )
    return name


def check_git_remote(root: Path, name: str) -> str:
    """`name` as the remote a project folder at `root` shares through (`init --share`)."""
    found = git.place(root)
    if found is None:
        raise OkstraError(f"{root} is not in a git repository: there is no remote to share through", "drop --share")
    return check_remote_name(name, found[0])


def shared(project: Project) -> Share | None:
    """The project's share, when it has one (`shareRemote` in `project.json`), checked."""
    name = project.config.share_remote
    if not name or not project.is_git:
        return None
    try:
        return Share(project, check_remote_name(name, project.repo))
    except OkstraError as exc:
        raise OkstraError(
            f"{project.root}/.okstra/project.json: shareRemote: {exc.what}",
            f"{exc.how}; or share through another: okstra init --share REMOTE",
        ) from None
