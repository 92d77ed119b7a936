"""A scripted Messages API on 127.0.0.1 for the real Claude Code CLI: its answers are data.

Each answer of the main conversation is the next step of the script (the step's number
is the number of assistant turns in the request's history, so a retried request gets
the same step):

- `{"bash": "COMMAND"}`: call the Bash tool with COMMAND;
- `{"bash": {"prompt": REGEX, "fill": {OLD: NEW}}}`: call it with the command okstra's
  prompt gives: the first code span of the prompt (the first user message) that REGEX
  finds, with OLD replaced by NEW for each placeholder the prompt asks the agent to fill
  in (the prompt is the last text block of the first user message; Claude Code's own
  reminders come before it) — a wrong or missing command in the prompt fails the test,
  as it would fail an agent; with `"use": TEMPLATE` beside `"prompt"`, the span (a path,
  say) goes where TEMPLATE has `{}`;
- `{"text": "ANSWER"}`: end the turn with ANSWER (the script's last step);
- any step: `"say": TEXT` (a text block before the tool call: one message, two content
  blocks, which Claude Code writes as two transcript lines with one id) and `"usage"`.

Every tool result the CLI sends back is kept (`results`), with the command it answers;
so is every main answer's message id and usage (`sent`) and every problem (`errors`).
Requests that are not the main conversation (no Bash tool offered, or not streamed) get
a short text answer. Streaming follows the API's server-sent events: `message_start`,
then per content block `content_block_start`, `content_block_delta`,
`content_block_stop`, then `message_delta` (stop reason and output tokens) and
`message_stop`.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Step = dict[str, Any]

_CODE_SPAN = re.compile(r"`([^`\n]+)`")


@dataclass
class ToolResult:
    command: str
    output: str
    is_error: bool


@dataclass
class ScriptedModel:
    steps: list[Step]
    results: list[ToolResult] = field(default_factory=list)
    sent: list[tuple[str, dict[str, int]]] = field(default_factory=list)
    """(message id, usage) of every main-conversation answer, in order."""
    errors: list[str] = field(default_factory=list)
    tool_names: list[list[str]] = field(default_factory=list)
    """The tools each main request offered."""
    prompt: str | None = None
    """The prompt of the main conversation (the last text block of its first message)."""
    base_url: str = ""
    _ids: Iterator[int] = field(default_factory=itertools.count)
    _commands: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str, dict[str, int]] | None:
        """The content blocks, stop reason and usage of the answer to one request of the
        main conversation; None for any other request."""
        tools = [t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)]
        if "Bash" not in tools or not body.get("stream"):
            return None
        messages = body.get("messages") or []
        with self._lock:
            self.tool_names.append(tools)
            if self.prompt is None and messages:
                self.prompt = _prompt(messages[0])
            self._note_results(messages)
            turn = sum(1 for m in messages if m.get("role") == "assistant")
            if turn >= len(self.steps):
                self.errors.append(f"request {turn + 1} came after the script's last step")
                return [{"type": "text", "text": "The script has ended."}], "end_turn", _usage(turn)
            return self._step(turn, self.steps[turn], _prompt(messages[0]) if messages else "")

    def _step(self, turn: int, step: Step, prompt: str) -> tuple[list[dict[str, Any]], str, dict[str, int]]:
        usage = step.get("usage") or _usage(turn)
        blocks: list[dict[str, Any]] = [{"type": "text", "text": step["say"]}] if "say" in step else []
        if "text" in step:
            return [*blocks, {"type": "text", "text": step["text"]}], "end_turn", usage
        command = step["bash"]
        if isinstance(command, dict):
            found = prompt_command(prompt, command["prompt"])
            if found is None:
                self.errors.append(f"step {turn + 1}: the prompt gives no command matching {command['prompt']!r}")
                return [{"type": "text", "text": "The prompt gives no such command."}], "end_turn", usage
            command = command["use"].replace("{}", found) if "use" in command else found
            for old, new in (step["bash"].get("fill") or {}).items():
                command = command.replace(old, new)
        tool_id = f"toolu_okstra_{next(self._ids):04d}"
        self._commands[tool_id] = command
        blocks.append({"type": "tool_use", "id": tool_id, "name": "Bash", "input": {"command": command}})
        return blocks, "tool_use", usage

    def _note_results(self, messages: list[dict[str, Any]]) -> None:
        """Keep the results of the tool calls this request answers (the last user turn)."""
        last = messages[-1] if messages else {}
        content = last.get("content") if last.get("role") == "user" else None
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, dict) or block.get("type") != "tool_result":
                continue
            command = self._commands.pop(block.get("tool_use_id", ""), None)
            if command is None:
                continue  # a retried request answers a call already noted
            self.results.append(ToolResult(command, _text(block), bool(block.get("is_error"))))

    def failures(self) -> str:
        """Everything that went wrong, for an assertion message ('' when nothing did)."""
        lines = list(self.errors)
        lines += [f"$ {r.command}\n{r.output}" for r in self.results if r.is_error]
        return "\n".join(lines)


def prompt_command(prompt: str, pattern: str) -> str | None:
    """The first code span of `prompt` that `pattern` finds (re.search), else None."""
    for match in _CODE_SPAN.finditer(prompt):
        if re.search(pattern, match.group(1)):
            return match.group(1)
    return None


def _usage(turn: int) -> dict[str, int]:
    """A different usage for every turn, so sums can be checked."""
    return {
        "input_tokens": 1000 + turn,
        "output_tokens": 10 + turn,
        "cache_read_input_tokens": 20000 + 100 * turn,
        "cache_creation_input_tokens": 300 + turn,
    }


def _prompt(message: dict[str, Any]) -> str:
    """The prompt Claude Code was given: the last text block of its first message (the
    blocks before it are Claude Code's own reminders)."""
    content = message.get("content")
    if isinstance(content, list):
        texts = [b["text"] for b in content if isinstance(b, dict) and isinstance(b.get("text"), str)]
        return texts[-1] if texts else ""
    return content if isinstance(content, str) else ""


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    parts = []
    for block in content if isinstance(content, list) else []:
        if isinstance(block, dict) and isinstance(block.get("text"), str):
            parts.append(block["text"])
        elif isinstance(block, dict) and isinstance(block.get("content"), (str, list)):
            parts.append(_text(block))
    return "\n".join(parts)


def _events(model: ScriptedModel, body: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    answer = model.answer(body)
    blocks, stop, usage = answer or ([{"type": "text", "text": "ok"}], "end_turn", _usage(0))
    message_id = f"msg_okstra_{next(model._ids):04d}"
    message = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": body.get("model") or "claude-test",
        "stop_sequence": None,
    }
    if answer is not None:
        with model._lock:
            model.sent.append((message_id, usage))
    if not body.get("stream"):
        return b"", {**message, "content": blocks, "stop_reason": stop, "usage": usage}
    start_usage = {**usage, "output_tokens": 1}
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {**message, "content": [], "stop_reason": None, "usage": start_usage}}
    ]
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            events.append(
                {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}
            )
            delta = {"type": "text_delta", "text": block["text"]}
        else:
            empty = {**block, "input": {}}
            events.append({"type": "content_block_start", "index": index, "content_block": empty})
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        events.append({"type": "content_block_delta", "index": index, "delta": delta})
        events.append({"type": "content_block_stop", "index": index})
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": usage["output_tokens"]},
        }
    )
    events.append({"type": "message_stop"})
    stream = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)
    return stream.encode(), {}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    model: ScriptedModel

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, code: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self) -> None:
        self._reply(200, b"")

    def do_GET(self) -> None:
        self._reply(404, b'{"type": "error", "error": {"type": "not_found_error", "message": "not here"}}')

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._reply(400, b'{"type": "error", "error": {"type": "invalid_request_error", "message": "bad JSON"}}')
            return
        path = self.path.split("?")[0]
        if path.endswith("/count_tokens"):
            self._reply(200, b'{"input_tokens": 1000}')
            return
        if path != "/v1/messages":
            self._reply(404, b'{"type": "error", "error": {"type": "not_found_error", "message": "not here"}}')
            return
        stream, whole = _events(self.model, body)
        if whole:
            self._reply(200, json.dumps(whole).encode())
        else:
            self._reply(200, stream, "text/event-stream")


@contextmanager
def scripted_model(steps: list[Step]) -> Iterator[ScriptedModel]:
    """The server, listening on a free port of 127.0.0.1 for the block."""
    model = ScriptedModel(steps)
    handler = type("Handler", (_Handler,), {"model": model})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    model.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield model
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
