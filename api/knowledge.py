"""The knowledge bases over HTTP: anyone may list them and their documents; the admin manages
them and uploads documents (multipart, several files, each checked on its own: rag/uploads.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, File, HTTPException, Path, UploadFile
from pydantic import BaseModel, Field

from api import openapi as doc
from auth.access import Access
from auth.callers import Caller
from chat.config import KB_NAME_MAX, KB_NAME_PATTERN
from chat.service import AgentService
from rag.bases import SAMPLE, KnowledgeBaseError, KnowledgeBases, Manifest, UnknownKnowledgeBase
from rag.uploads import Upload, remove_from, upload_into

KbName = Path(pattern=KB_NAME_PATTERN, max_length=KB_NAME_MAX, description="A knowledge base's name.")
DocumentName = Path(min_length=1, max_length=255, description="A document's file name, as listed.")
Files = File(min_length=1, description="One part named `files` per document.")


class NewKnowledgeBase(BaseModel):
    name: str = Field(pattern=KB_NAME_PATTERN, max_length=KB_NAME_MAX,
                      description="1 to 40 lowercase letters, digits, - or _; no two dashes in a row.")
    assistant_name: str = Field("a support assistant", min_length=1, max_length=80)
    description: str = Field("", max_length=200)
    instructions: str = Field("", max_length=1000)
    examples: list[str] = Field(default_factory=list, max_length=6)


def build_knowledge_api(service: AgentService, access: Access, max_upload_bytes: int) -> APIRouter:
    """Return the /api/kb routes over the warm service's knowledge bases."""
    api = APIRouter(prefix="/api/kb", tags=["knowledge bases"])
    caller_of = Depends(access.api_caller)

    def admin_of(caller: Caller = caller_of) -> Caller:
        return access.require_admin(caller)

    admin = Depends(admin_of)

    def library() -> KnowledgeBases | None:
        """The warm service's knowledge bases (None: an agent built without any, as in tests)."""
        if service.components is None:
            raise HTTPException(503, "The knowledge bases are still loading; try again in a moment.")
        return service.knowledge

    def found(name: str) -> KnowledgeBases:
        bases = library()
        if bases is None or not bases.exists(name):
            raise HTTPException(404, "There is no knowledge base with that name; GET /api/kb lists them.")
        return bases

    @api.get("", summary="List the knowledge bases", response_model=None,
             responses=doc.answers(doc.KnowledgeBaseList, 401, 503))
    async def list_bases(_: Caller = caller_of) -> dict[str, Any]:
        bases = library()
        described = [] if bases is None else await asyncio.to_thread(
            lambda: [bases.describe(name) for name in bases.names()])
        return {"knowledge_bases": described, "default": service.default_knowledge_base}

    @api.post("", summary="Create an empty knowledge base (admin only)", response_model=None,
              responses=doc.answers(doc.KnowledgeBaseInfo, 401, 403, 409, 503))
    async def create_base(new: NewKnowledgeBase, _: Caller = admin) -> dict[str, Any]:
        bases = library()
        if bases is None:
            raise HTTPException(409, "This agent was built without a knowledge store.")
        manifest = Manifest(new.assistant_name, new.description, new.instructions, tuple(new.examples))
        try:
            await asyncio.to_thread(bases.create, new.name, manifest)
        except KnowledgeBaseError as error:
            raise HTTPException(409, str(error)) from None
        return await asyncio.to_thread(bases.describe, new.name)

    @api.delete("/{name}", summary="Delete a knowledge base and its documents (admin only)", response_model=None,
                responses=doc.answers(doc.KnowledgeBaseDeleted, 401, 403, 404, 409, 503))
    async def delete_base(name: str = KbName, _: Caller = admin) -> dict[str, Any]:
        bases = found(name)
        if name in ("sample", service.default_knowledge_base):
            raise HTTPException(409, "The sample and the default knowledge base (KNOWLEDGE_BASE) stay.")
        try:
            await asyncio.to_thread(bases.delete, name)
        except UnknownKnowledgeBase:
            raise HTTPException(404, "There is no knowledge base with that name.") from None
        return {"name": name, "deleted": True}

    @api.get("/{name}/documents", summary="A knowledge base's documents, chunk counts and when each was added",
             response_model=None, responses=doc.answers(doc.DocumentList, 401, 404, 503))
    async def list_documents(name: str = KbName, _: Caller = caller_of) -> dict[str, Any]:
        bases = found(name)
        return {"documents": await asyncio.to_thread(bases.get(name).documents)}

    @api.post("/{name}/documents", summary="Upload documents: .md, .txt, .pdf, .html (admin only)",
              response_model=None, responses=doc.answers(doc.UploadResults, 401, 403, 404, 409, 503))
    async def upload_documents(name: str = KbName,
                               files: list[UploadFile] = Files,
                               _: Caller = admin) -> dict[str, Any]:
        bases = found(name)
        if name == SAMPLE:
            raise HTTPException(409, "The sample's documents live in the repository (data/kb); "
                                     "create a knowledge base of your own for yours.")
        uploads = [Upload(f.filename, f.size if f.size is not None else 0, f.file.read) for f in files]
        return await asyncio.to_thread(upload_into, bases, name, uploads, max_upload_bytes)

    @api.delete("/{name}/documents/{document}", summary="Remove a document from a knowledge base (admin only)",
                response_model=None, responses=doc.answers(doc.DocumentRemoved, 401, 403, 404, 503))
    async def remove_document(name: str = KbName, document: str = DocumentName, _: Caller = admin) -> dict[str, Any]:
        bases = found(name)
        if name == "sample":
            raise HTTPException(404, "The sample's documents live in the repository (data/kb).")
        removed = await asyncio.to_thread(remove_from, bases, name, document)
        if not removed:
            raise HTTPException(404, "That knowledge base has no document of that name.")
        return {"document": document, "chunks_removed": removed}

    return api

