"""A bare Gradio app that relays an OpenAI-compatible server: the benchmark's baseline.

It has no agent, no retrieval, no memory and no UI: one API endpoint, `/ask`,
streams the model's answer so far as each text token arrives. Time to first
token measured through it is what Gradio plus the OpenAI client cost by
themselves, so Glassbox's own overhead is the difference.

    demo = build_relay("http://127.0.0.1:8001/v1", "scripted")
    demo.launch()
    # gradio_client.Client(url).submit("Hello?", "thread-1", api_name="/ask")
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import gradio as gr
from openai import AsyncOpenAI


def build_relay(base_url: str, model: str, api_key: str = "relay") -> gr.Blocks:
    """Build a Blocks app whose only endpoint, `/ask`, streams the model's answer."""
    client = AsyncOpenAI(base_url=base_url, api_key=api_key)

    async def ask(message: str, thread_id: str) -> AsyncIterator[str]:
        """Stream the answer to `message`, yielding the text so far after each token.

        `thread_id` is accepted so the call matches Glassbox's; the relay keeps no memory.
        """
        stream = await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": message}], stream=True
        )
        answer = ""
        async for chunk in stream:
            text = chunk.choices[0].delta.content if chunk.choices else None
            if text:  # the role chunk carries "", which is not a token
                answer += text
                yield answer

    with gr.Blocks(title="Bare relay") as demo:
        gr.api(ask, api_name="ask", concurrency_limit=None)  # like Glassbox's /ask: a fair baseline
    return demo


def main(argv: list[str] | None = None) -> None:
    """Serve the relay until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8001/v1")
    parser.add_argument("--model", default="scripted")
    parser.add_argument("--port", type=int, default=7861)
    args = parser.parse_args(argv)
    build_relay(args.base_url, args.model).launch(server_port=args.port)


if __name__ == "__main__":
    main()
