"""The Knowledge tab: the knowledge bases, their documents and identities; the admin manages them.

Visitors see what the admin offers. The admin (in AUTH_MODE=local, the local user; on a Space,
its owner signed in) creates and deletes knowledge bases, uploads documents (several at once,
each with its own result line: rag/uploads.py) and removes them. Every handler checks the caller
again: hidden buttons are not a permission.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from rag.bases import SAMPLE, KnowledgeBaseError, KnowledgeBases, Manifest, UnknownKnowledgeBase
from rag.uploads import Upload, UploadResult, remove_from, summary, upload_into
from ui.render import inert
from ui.visitors import caller_of

if TYPE_CHECKING:
    from app import Glassbox

log = logging.getLogger("glassbox.ui")
CSS = """
#gb-kb-results { max-height: 320px; overflow-y: auto; }
"""
NOT_ADMIN = ("Only the admin changes knowledge bases: in `AUTH_MODE=local` that is you; on a Space, its owner "
             "signed in with Hugging Face. You can choose among these in the Chat tab.")


def add_knowledge_tab(glassbox: Glassbox, demo: gr.Blocks, tab: gr.Tab, visitor: gr.BrowserState) -> None:
    """Build the Knowledge tab and its handlers inside the page being built."""
    service, access, max_bytes = glassbox.service, glassbox.access, glassbox.settings.max_upload_bytes

    def is_admin(visitor: str, profile: gr.OAuthProfile | None) -> bool:
        return caller_of(access, visitor, profile).is_admin

    def library() -> KnowledgeBases | None:
        bases = service.knowledge
        if bases is None:
            gr.Warning("The knowledge bases are still loading (or this agent has none); try again in a moment.")
        return bases

    def admin_library(visitor: str, profile: gr.OAuthProfile | None) -> KnowledgeBases | None:
        if not is_admin(visitor, profile):
            gr.Warning(NOT_ADMIN)
            return None
        return library()

    def describe(name: str) -> tuple[Any, ...]:
        """The chosen knowledge base's summary, documents, document choices and identity fields."""
        bases = service.knowledge
        if bases is None or not name or not bases.exists(name):
            hidden = gr.update(visible=False)
            return "No knowledge base chosen.", [], gr.update(choices=[], value=None), "", "", "", "", hidden, hidden
        info = bases.describe(name)
        documents = bases.get(name).documents()
        rows = [[d["document"], d["chunks"], _when(d["added_at"])] for d in documents]
        manifest = bases.manifest(name)
        about = (f"**{inert(info['assistant_name'])}** · {inert(info['description'] or name)}  \n"
                 f"{info['documents']} documents · {info['chunks']} chunks · fingerprint `{info['fingerprint']}`"
                 + (" · the sample shop, kept in the repository" if name == SAMPLE else ""))
        names = [d["document"] for d in documents]
        return (about, rows, gr.update(choices=names, value=names[0] if names else None), manifest.assistant_name,
                manifest.description, manifest.instructions, "\n".join(manifest.examples),
                gr.update(visible=name != SAMPLE), gr.update(visible=name not in (SAMPLE, service.default_knowledge_base)))

    async def show(current: str, visitor: str, profile: gr.OAuthProfile | None = None):
        while service.status == "warming up":  # sleeping holds no worker thread
            await asyncio.sleep(0.5)
        bases = service.knowledge
        names = bases.names() if bases is not None else []
        value = current if current in names else service.default_knowledge_base if service.default_knowledge_base in names else None
        admin = is_admin(visitor, profile)
        return (gr.update(choices=names, value=value), *describe(value or ""),
                gr.update(visible=admin), gr.update(visible=not admin))

    async def upload(name: str, paths: list[str] | None, visitor: str, profile: gr.OAuthProfile | None = None,
                     progress: gr.Progress = gr.Progress()):  # noqa: B008 (how Gradio asks for a progress bar)
        bases = admin_library(visitor, profile)
        if bases is None or not paths:
            if bases is not None:
                gr.Warning("Choose or drop the files to add first.")
            yield gr.skip(), gr.skip()
            return
        if name == SAMPLE or not bases.exists(name):
            gr.Warning("Choose (or create) a knowledge base of your own first: the sample is kept in the repository.")
            yield gr.skip(), gr.skip()
            return
        uploads = [Upload(Path(path).name, _size(path), Path(path).read_bytes) for path in paths]
        loop, arrived = asyncio.get_running_loop(), asyncio.Queue()
        job = asyncio.ensure_future(asyncio.to_thread(
            upload_into, bases, name, uploads, max_bytes, lambda r: loop.call_soon_threadsafe(arrived.put_nowait, r)))
        results: list[UploadResult] = []
        progress((0, len(uploads)), desc="Reading and embedding", unit="files")
        while not job.done() or not arrived.empty():
            waiting = asyncio.ensure_future(arrived.get())
            await asyncio.wait({waiting, job}, return_when=asyncio.FIRST_COMPLETED)
            if not waiting.done():
                waiting.cancel()
                continue
            results.append(waiting.result())
            progress((len(results), len(uploads)), desc=f"{len(results)} of {len(uploads)} files", unit="files")
            yield _results_markdown(results, len(uploads)), gr.skip()
        _forget(paths)
        try:
            job.result()
        except UnknownKnowledgeBase:
            gr.Warning(f"The knowledge base {name} was deleted meanwhile.")
        except Exception:
            log.exception("upload failed")
            gr.Warning("The upload could not be finished; the lines above say which files went in.")
        yield _results_markdown(results, len(uploads)), gr.update(value=None)

    async def remove(name: str, document: str | None, visitor: str, profile: gr.OAuthProfile | None = None):
        bases = admin_library(visitor, profile)
        if bases is None or not document:
            return
        if name == SAMPLE:
            gr.Warning("The sample's documents live in the repository (data/kb).")
            return
        removed = await asyncio.to_thread(remove_from, bases, name, document)
        gr.Info(f"Removed {document}: {removed} chunks." if removed else "That document was already gone.")

    async def save_identity(name: str, assistant: str, description: str, instructions: str, examples: str,
                            visitor: str, profile: gr.OAuthProfile | None = None):
        bases = admin_library(visitor, profile)
        if bases is None or not bases.exists(name):
            return
        manifest = Manifest.from_dict({"assistant_name": assistant.strip() or Manifest.assistant_name,
                                       "description": description, "instructions": instructions,
                                       "examples": [line for line in examples.splitlines() if line.strip()]})
        try:
            await asyncio.to_thread(bases.set_manifest, name, manifest)
        except KnowledgeBaseError as error:
            gr.Warning(str(error))
            return
        gr.Info(f"Saved who the assistant is for {name}.")

    async def create(new_name: str, visitor: str, profile: gr.OAuthProfile | None = None):
        bases = admin_library(visitor, profile)
        if bases is None:
            return gr.skip(), gr.skip()
        try:
            await asyncio.to_thread(bases.create, new_name.strip())
        except KnowledgeBaseError as error:
            gr.Warning(str(error))
            return gr.skip(), gr.skip()
        return gr.update(choices=bases.names(), value=new_name.strip()), ""

    def ask_delete(name: str):
        if name in (SAMPLE, service.default_knowledge_base):
            gr.Warning("The sample and the default knowledge base (KNOWLEDGE_BASE) stay.")
            return gr.update(visible=False), gr.skip()
        return gr.update(visible=True), f"Delete **{inert(name)}** and all its documents? This cannot be undone."

    async def delete(name: str, visitor: str, profile: gr.OAuthProfile | None = None):
        bases = admin_library(visitor, profile)
        hidden = gr.update(visible=False)
        if bases is None or name in (SAMPLE, service.default_knowledge_base) or not bases.exists(name):
            return gr.skip(), hidden
        await asyncio.to_thread(bases.delete, name)
        gr.Info(f"Deleted the knowledge base {name}.")
        return gr.update(choices=bases.names(), value=service.default_knowledge_base), hidden

    gr.Markdown("### Knowledge bases\nEach conversation answers from one knowledge base, chosen in the Chat tab. "
                "Answers cite the documents they come from.")
    not_admin = gr.Markdown(NOT_ADMIN, visible=False, elem_id="gb-kb-not-admin")
    with gr.Row(equal_height=False):  # side by side on a desktop, stacked on a phone
        chosen = gr.Dropdown([], label="Knowledge base", elem_id="gb-kb-manage", scale=1, min_width=260)
        with gr.Column(scale=2, min_width=300):
            about = gr.Markdown(elem_id="gb-kb-about")
    documents = gr.Dataframe(headers=["Document", "Chunks", "Added (UTC)"], datatype=["str", "number", "str"],
                             interactive=False, elem_id="gb-kb-documents", max_height=320)
    with gr.Column(visible=False, elem_id="gb-kb-admin") as manage:
        with gr.Column(elem_id="gb-kb-editable") as editable:  # not for the sample: it lives in the repository
            files = gr.File(file_count="multiple", type="filepath", elem_id="gb-kb-files",
                            label=f"Add documents: .md, .txt, .pdf or .html, several at once, up to "
                                  f"{max_bytes / 1_048_576:g} MB each. A file of the same name replaces the old one.")
            with gr.Row(equal_height=True):
                upload_button = gr.Button("Add to this knowledge base", variant="primary", elem_id="gb-kb-upload")
                # A whole folder at once: its files go in as if chosen one by one, each with its line below.
                folder = gr.UploadButton("Add a whole folder…", file_count="directory", type="filepath",
                                         elem_id="gb-kb-folder", scale=0, min_width=240)
            results = gr.Markdown(elem_id="gb-kb-results")
            with gr.Row(equal_height=True):
                document = gr.Dropdown([], label="Document", elem_id="gb-kb-document", scale=3)
                remove_button = gr.Button("Remove document", variant="stop", elem_id="gb-kb-remove",
                                          scale=0, min_width=170)
            with gr.Accordion("Who the assistant is (this knowledge base's manifest)", open=False):
                assistant = gr.Textbox(label="Assistant name", max_length=80, elem_id="gb-kb-assistant")
                description = gr.Textbox(label="One-line description", max_length=200, elem_id="gb-kb-description")
                instructions = gr.Textbox(label="Instructions for the assistant", lines=3, max_length=1000)
                examples = gr.Textbox(label="Example questions, one per line (up to 6; clickable in an empty chat)",
                                      lines=4, max_length=1300, elem_id="gb-kb-examples")
                save_button = gr.Button("Save", elem_id="gb-kb-save")
        with gr.Accordion("New knowledge base", open=False):
            with gr.Row(equal_height=True):
                new_name = gr.Textbox(label="Name: lowercase letters, digits, - or _", max_length=40,
                                      elem_id="gb-kb-new-name", scale=3)
                create_button = gr.Button("Create", elem_id="gb-kb-create", scale=0, min_width=120)
        with gr.Row():
            delete_button = gr.Button("Delete this knowledge base…", variant="stop", size="sm", scale=0,
                                      min_width=220, elem_id="gb-kb-delete")
        with gr.Row(visible=False) as confirm_row:
            confirm_text = gr.Markdown()
            confirm_button = gr.Button("Delete it", variant="stop", elem_id="gb-kb-delete-confirm", scale=0)
            cancel_button = gr.Button("Keep it", scale=0)

    private = {"api_visibility": "private"}
    detail = [about, documents, document, assistant, description, instructions, examples, editable, delete_button]
    viewing = [chosen, *detail, manage, not_admin]
    for trigger in (demo.load, tab.select):
        trigger(show, [chosen, visitor], viewing, show_progress="hidden", **private)
    chosen.change(describe, chosen, detail, **private)
    upload_button.click(upload, [chosen, files, visitor], [results, files], concurrency_limit=2, **private).then(
        describe, chosen, detail, **private)
    folder.upload(upload, [chosen, folder, visitor], [results, files], concurrency_limit=2, **private).then(
        describe, chosen, detail, **private)
    remove_button.click(remove, [chosen, document, visitor], None, **private).then(describe, chosen, detail, **private)
    save_button.click(save_identity, [chosen, assistant, description, instructions, examples, visitor], None,
                      **private).then(describe, chosen, detail, **private)
    create_button.click(create, [new_name, visitor], [chosen, new_name], **private)
    delete_button.click(ask_delete, chosen, [confirm_row, confirm_text], **private)
    cancel_button.click(lambda: gr.update(visible=False), None, confirm_row, **private)
    confirm_button.click(delete, [chosen, visitor], [chosen, confirm_row], **private)


def _results_markdown(results: list[UploadResult], total: int) -> str:
    lines = [f"- {'✅' if r.ok else '⚠️'} **{inert(r.file)}**: {inert(r.message)}" for r in results]
    head = summary(results) + (f"; {total - len(results)} to go…" if len(results) < total else ".")
    return f"**{head}**\n\n" + "\n".join(lines)


def _when(added_at: object) -> str:
    return str(added_at).replace("T", " ")[:16] if added_at else "–"


def _size(path: str) -> int:
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0


def _forget(paths: list[str]) -> None:
    """Delete Gradio's copies of the uploads: the text is in the knowledge base now."""
    for path in paths:
        try:
            Path(path).unlink(missing_ok=True)
        except OSError:
            pass
