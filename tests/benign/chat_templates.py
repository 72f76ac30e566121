"""Chat templates in the style real model repositories ship (loops, filters, namespaces, raise_exception).

They are data for the fixtures only, kept as ``templates/*.jinja``: the builders write them into
``tokenizer_config.json``, ``chat_template.jinja`` and GGUF metadata exactly as the libraries do.

- ``LLAMA2_CHAT``: Llama-2-chat style, system prompt folding, role alternation enforced with raise_exception;
- ``CHATML_TOOLS``: ChatML with tool calling (Qwen-2.5 / Hermes style): namespace, tojson, nested loops;
- ``LLAMA3_TOOLS``: Llama-3.1 style headers, a date from strftime_now, map/join filters, raise_exception.
"""

from __future__ import annotations

from pathlib import Path

_FOLDER = Path(__file__).resolve().parent / "templates"

LLAMA2_CHAT = (_FOLDER / "llama2_chat.jinja").read_text(encoding="utf-8")
CHATML_TOOLS = (_FOLDER / "chatml_tools.jinja").read_text(encoding="utf-8")
LLAMA3_TOOLS = (_FOLDER / "llama3_tools.jinja").read_text(encoding="utf-8")
