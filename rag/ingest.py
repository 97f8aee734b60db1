"""Ingest files and folders into the knowledge base: `python -m rag.ingest PATH [PATH ...]`."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from chromadb.api.types import Documents, EmbeddingFunction
from tqdm import tqdm

from chat.config import Settings, SettingsError
from rag.bases import NAME_RULE, SAMPLE, KnowledgeBases, valid_name
from rag.embeddings import embedding_function_for
from rag.loading import UnreadableDocument, collect_files, iter_documents
from rag.lock import StoreBusy
from rag.opening import adopt_eval_set, adopt_manifest, open_knowledge_bases
from rag.splitting import split_into_chunks
from rag.store import KnowledgeBase

USAGE = ("usage: python -m rag.ingest [--kb NAME] PATH [PATH ...]  (files or folders of .md, .txt, .pdf, .html)\n"
         "       python -m rag.ingest --list [--kb NAME]      knowledge bases, or one's documents\n"
         "       python -m rag.ingest --kb NAME --remove DOCUMENT [DOCUMENT ...]\n"
         "  --kb NAME  the knowledge base to add to (default: KNOWLEDGE_BASE, else docs); created if new")


@dataclass
class IngestReport:
    """What one ingest did, file by file."""

    files_ok: int = 0
    chunks_added: int = 0
    chunks_unchanged: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def summary(self) -> str:
        """Return the one-line summary the CLI prints."""
        return (
            f"Ingested {self.files_ok} files: {self.chunks_added} chunks added, "
            f"{self.chunks_unchanged} unchanged, {len(self.failures)} failed."
        )


def ingest_paths(kb: KnowledgeBase, paths: Iterable[Path], progress: bool = False) -> IngestReport:
    """Add every readable document under `paths` to `kb`; unchanged files add nothing."""
    files = collect_files(paths)
    report = IngestReport()
    # Chunks are keyed by file name, so a second file of the same name would replace the first.
    seen: dict[str, Path] = {}
    documents = iter_documents(files)
    for path, text in tqdm(documents, total=len(files), unit="file", disable=not progress):
        if isinstance(text, UnreadableDocument):
            report.failures.append((str(path), text.reason))
            continue
        if path.name in seen:
            report.failures.append((str(path), f"another file named {path.name} was ingested"))
            continue
        seen[path.name] = path
        chunks = split_into_chunks(text, source=path.name)
        added = kb.add_chunks(chunks)
        report.files_ok += 1
        report.chunks_added += added
        report.chunks_unchanged += len(chunks) - added
    return report


def main(
    argv: list[str] | None = None,
    embedding_function: EmbeddingFunction[Documents] | None = None,
) -> int:
    """Run the CLI; return 0 on success, 1 if any file failed, 2 on a usage error, 3 if the app holds the store."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    listing = "--list" in args
    if listing:
        args.remove("--list")
    name = None
    if args[:1] == ["--kb"]:
        if len(args) < 2 or not valid_name(args[1]):
            print(f"error: --kb needs a name. {NAME_RULE}.\n{USAGE}", file=sys.stderr)
            return 2
        name, args = args[1], args[2:]
    if listing or args[:1] == ["--remove"]:
        return _manage(name, args[1:] if args[:1] == ["--remove"] else None, embedding_function)
    if not args:
        print(f"error: give at least one file or folder\n{USAGE}", file=sys.stderr)
        return 2
    missing = [arg for arg in args if not Path(arg).exists()]
    if missing:
        print(f"error: no such file or folder: {', '.join(missing)}\n{USAGE}", file=sys.stderr)
        return 2
    settings = _settings()
    if settings is None:
        return 2
    name = name or (settings.knowledge_base if settings.knowledge_base != SAMPLE else "docs")
    if name == SAMPLE:
        print("error: the knowledge base sample is the sample shop, kept in data/kb; give your documents "
              "their own, e.g. --kb docs", file=sys.stderr)
        return 2
    bases = _open_bases(settings, embedding_function, name)
    if bases is None:
        return 3
    kb = bases.open(name).kb
    print(f"Adding to the knowledge base {name}.")
    report = ingest_paths(kb, [Path(arg) for arg in args], progress=True)
    for folder in (Path(arg) for arg in args):
        if adopt_manifest(bases, name, folder):
            print(f"Took {folder / 'manifest.json'} as the identity of {name}.")
        said = adopt_eval_set(bases, name, folder)
        if said:
            print(f"{name}: {said}.")
    for path, reason in report.failures:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    print(report.summary())
    return 1 if report.failures else 0


def _manage(name: str | None, remove: list[str] | None,
            embedding_function: EmbeddingFunction[Documents] | None) -> int:
    """--list (knowledge bases, or one's documents) and --remove DOCUMENT...; return the exit code."""
    if remove is not None and (not name or not remove):
        print(f"error: --remove needs --kb NAME and at least one document\n{USAGE}", file=sys.stderr)
        return 2
    settings = _settings()
    if settings is None:
        return 2
    bases = _open_bases(settings, embedding_function, name)
    if bases is None:
        return 3
    if name is not None and not bases.exists(name):
        print(f"error: there is no knowledge base named {name}; --list shows them", file=sys.stderr)
        return 2
    if remove is None and name is None:
        for known in bases.names():
            described = bases.describe(known)
            print(f"{known}: {described['documents']} documents, {described['chunks']} chunks · {described['assistant_name']}")
        return 0
    kb = bases.get(name)
    if remove is None:
        for document in kb.documents():
            print(f"{document['document']}: {document['chunks']} chunks, added {document['added_at'] or 'before dates were kept'}")
        return 0
    missing = 0
    for document in remove:
        removed = kb.remove_document(document)
        missing += not removed
        print(f"removed {document}: {removed} chunks" if removed else f"no document named {document} in {name}")
    return 1 if missing else 0


def _settings() -> Settings | None:
    """Read the settings, or say what is wrong with them and return None."""
    try:
        return Settings.from_env()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return None


def _open_bases(settings: Settings, embedding_function: EmbeddingFunction[Documents] | None,
                name: str | None) -> KnowledgeBases | None:
    """Open the store as its one writer, or say who holds it and what to do instead; None then."""
    try:
        return open_knowledge_bases(settings.state_dir, embedding_function or embedding_function_for(settings),
                                    settings.sample_dir / "manifest.json",
                                    # A Chroma server is its own one writer: the CLI needs no lock beside the app.
                                    holder=None if settings.chroma_url else "python -m rag.ingest",
                                    chroma_url=settings.chroma_url)
    except StoreBusy as busy:
        url = busy.url or f"http://{settings.server_name}:{settings.server_port}"
        print(f"error: {busy}.\nWhile it serves, go through it instead: the Knowledge tab at {url}, or\n"
              f"  curl {url}/api/kb/{name or 'NAME'}/documents            (list)\n"
              f"  curl -F files=@FILE {url}/api/kb/{name or 'NAME'}/documents   (add; the admin's token if AUTH_MODE "
              f"isn't local)\nOr stop the app and run this again.", file=sys.stderr)
        return None


if __name__ == "__main__":
    sys.exit(main())
