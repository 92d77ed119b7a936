"""Shell completion for `okstra`: the scripts `okstra completion bash|zsh|fish` prints,
and the answers they ask for.

Each script's function runs `okstra __complete -- WORD…` at every TAB (the words after
`okstra`, the last one the word being completed, maybe empty). The answer comes from
the parser itself (commands, options, their choices) and, for a `GROUP/ID` argument,
from the tasks of the project the command would work on: one candidate a line,
`candidate<TAB>description`, or the single line `__files__` for the shell's own path
completion. It never fails into the shell: anything that goes wrong answers nothing.
"""

from __future__ import annotations

import argparse

FILES = "__files__"
TASK_METAVARS = frozenset({"GROUP/ID", "G/ID"})
PATH_METAVARS = frozenset({"PATH", "DIR", "FILE", "RUN_DIR"})


def complete(parser: argparse.ArgumentParser, words: list[str]) -> int:
    """`okstra __complete -- WORD…`: print the candidates for the last word."""
    if words[:1] == ["--"]:
        words = words[1:]
    if not words:
        words = [""]
    try:
        found = candidates(parser, words[:-1], words[-1])
    except Exception:  # noqa: BLE001 - the boundary: a TAB never prints a traceback into the command line
        found = []
    for line in found:
        print(line)
    return 0


def candidates(parser: argparse.ArgumentParser, done: list[str], prefix: str) -> list[str]:
    """What may follow the words `done` and begins with `prefix`."""
    current = parser
    seen = 0  # positional words of the current (sub)command
    expecting: argparse.Action | None = None  # an option whose value comes next
    project: str | None = None
    for word in done:
        if expecting is not None:
            if word == "=":  # bash splits `--project=P` into three words
                continue
            if expecting.dest == "project":
                project = word
            expecting = None
            continue
        if word.startswith("-") and word != "-":
            name, eq, value = word.partition("=")
            action = current._option_string_actions.get(name)
            if action is not None and action.nargs != 0 and not eq:
                expecting = action
            elif action is not None and action.dest == "project":
                project = value
            continue
        sub = _subcommands(current)
        if sub is not None and word in sub.choices:
            current, seen = sub.choices[word], 0
            continue
        seen += 1
    if expecting is not None:
        return _values(expecting, "" if prefix == "=" else prefix, project)
    if prefix.startswith("--") and "=" in prefix:  # zsh and fish keep `--lang=e` one word
        name, _, value = prefix.partition("=")
        action = current._option_string_actions.get(name)
        if action is None or action.nargs == 0:
            return []
        return [f"{name}={line}" for line in _values(action, value, project) if line != FILES]
    if prefix.startswith("-"):
        return [
            f"{option}\t{_help(action)}"
            for action in current._actions
            if action.help != argparse.SUPPRESS
            for option in action.option_strings
            if option.startswith("--") and option.startswith(prefix)
        ]
    sub = _subcommands(current)
    if sub is not None:
        return [f"{c.dest}\t{_help(c)}" for c in sub._choices_actions if c.dest.startswith(prefix)]
    positionals = [a for a in current._actions if not a.option_strings]
    if seen < len(positionals):
        return _values(positionals[seen], prefix, project)
    return []


def _subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction[argparse.ArgumentParser] | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def _help(action: argparse.Action) -> str:
    return " ".join((action.help or "").split())


def _values(action: argparse.Action, prefix: str, project: str | None) -> list[str]:
    if action.choices is not None:
        return [f"{choice}\t" for choice in action.choices if str(choice).startswith(prefix)]
    if action.metavar in TASK_METAVARS:
        return _task_refs(prefix, project)
    if action.metavar in PATH_METAVARS or action.dest in ("path", "file", "dir", "run_dir"):
        return [FILES]
    return []


def _task_refs(prefix: str, project: str | None) -> list[str]:
    """The tasks of the project the command would work on, with their titles."""
    from .errors import OkstraError
    from .locations import default_root
    from .projects import load_project
    from .tasks import list_tasks, load_task

    try:
        found = load_project(default_root(project))
        refs = [ref for ref in list_tasks(found) if str(ref).startswith(prefix)]
    except OkstraError:
        return []
    lines = []
    for ref in refs:
        try:
            title = " ".join(load_task(found, ref).doc.title.split())
        except OkstraError:
            title = ""
        lines.append(f"{ref}\t{title}")
    return lines


_BASH = """\
# okstra completion for bash; load it from ~/.bashrc: eval "$(okstra completion bash)"
_okstra() {
    local cur=${COMP_WORDS[COMP_CWORD]} out IFS=$'\\n'
    out=$("${COMP_WORDS[0]}" __complete -- "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null) || return 0
    if [[ $out == __FILES__ ]]; then
        compopt -o filenames 2>/dev/null
        COMPREPLY=($(compgen -f -- "$cur"))
        return 0
    fi
    COMPREPLY=($(printf '%s\\n' "$out" | cut -f1))
}
complete -F _okstra okstra
"""

_ZSH = """\
#compdef okstra
# okstra completion for zsh; load it from ~/.zshrc, after compinit: eval "$(okstra completion zsh)"
_okstra() {
    local -a lines described
    local line
    lines=("${(@f)$("${words[1]}" __complete -- "${(@)words[2,CURRENT]}" 2>/dev/null)}")
    if [[ ${lines[1]} == __FILES__ ]]; then
        _files
        return
    fi
    for line in $lines; do
        [[ -n $line ]] || continue
        described+=("${${line%%$'\\t'*}//:/\\\\:}:${line#*$'\\t'}")
    done
    _describe -t okstra okstra described
}
compdef _okstra okstra
"""

_FISH = """\
# okstra completion for fish; install it: okstra completion fish > ~/.config/fish/completions/okstra.fish
function __okstra_complete
    set -l words (commandline -opc)
    set -l current (commandline -ct)
    set -q current[1]; or set current ''
    set -l out ($words[1] __complete -- $words[2..-1] $current 2>/dev/null)
    if test "$out[1]" = __FILES__
        __fish_complete_path $current
        return
    end
    printf '%s\\n' $out
end
complete -c okstra -f -a '(__okstra_complete)'
"""


def script(shell: str) -> str:
    """The completion script for `shell` (bash, zsh or fish)."""
    text = {"bash": _BASH, "zsh": _ZSH, "fish": _FISH}[shell]
    return text.replace("__FILES__", FILES)
