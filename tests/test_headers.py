"""Every response forbids remote resources (Content-Security-Policy), sends no Referer and no sniffing."""

from __future__ import annotations

import httpx

from api.headers import POLICY, SecurityHeaders


def policy(response: httpx.Response) -> dict[str, str]:
    """Return the response's CSP as {directive: sources}; exactly one policy must be present."""
    (header,) = response.headers.get_list("content-security-policy")
    return dict(part.strip().split(" ", 1) for part in header.split(";"))


def assert_guarded(response: httpx.Response) -> None:
    csp = policy(response)
    assert csp["default-src"] == "'self'" and csp["connect-src"] == "'self'"
    assert csp["img-src"] == "'self' data: blob:"  # no remote image: nothing to leak a conversation to
    assert "http" not in " ".join(v for k, v in csp.items() if k != "frame-ancestors")
    assert csp["frame-ancestors"] == "'self' https://huggingface.co https://*.hf.space"  # the Space's iframe
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_the_page_the_api_the_docs_and_refusals_carry_the_headers(serve_glassbox):
    url = serve_glassbox(max_body_bytes=1000).url
    with httpx.Client(base_url=url, timeout=10) as client:
        health, page, docs = client.get("/api/health"), client.get("/"), client.get("/docs")
        too_big = client.post("/api/chat", content=b"x" * 5000, headers={"content-type": "application/json"})
        missing = client.get("/api/runs/no-such-run")
    assert health.status_code == page.status_code == docs.status_code == 200
    assert too_big.status_code == 413 and missing.status_code == 404
    for response in (health, page, docs, too_big, missing):
        assert_guarded(response)


async def test_a_policy_the_app_set_is_replaced_not_doubled():
    sent = []

    async def app(scope, receive, send):
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-security-policy", b"img-src *"), (b"content-type", b"text/plain")],
            }
        )
        await send({"type": "http.response.body", "body": b"hi"})

    async def send(message):
        sent.append(message)

    await SecurityHeaders(app)({"type": "http", "path": "/", "method": "GET", "headers": []}, None, send)
    headers = sent[0]["headers"]
    assert [v for n, v in headers if n == b"content-security-policy"] == [POLICY.encode()]
    assert (b"content-type", b"text/plain") in headers
    assert sent[1]["body"] == b"hi"
