"""The deployment files in deploy/ work as the README says: Prometheus's config and the fleet's rules
(checked by promtool), and nginx in front of two replicas sharing one Postgres database."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from bench.run import free_port
from tests.conftest import Reply, fresh_database
from tests.test_browser import browser_page  # noqa: F401 (a fixture)

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
REQUIRED = os.environ.get("GLASSBOX_REQUIRE_POSTGRES") == "1"  # CI installs prometheus and nginx beside it


def tool(name: str) -> str:
    found = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None)
    if found is None:
        (pytest.fail if REQUIRED else pytest.skip)(f"{name} is not installed (apt-get install {name})")
    return found


def test_prometheus_scrapes_each_replica_and_the_rules_add_buckets_before_the_quantile(tmp_path) -> None:
    promtool = tool("promtool")
    for command in (["check", "config", "prometheus.yml"], ["test", "rules", "fleet.rules.test.yml"]):
        checked = subprocess.run([promtool, *command], cwd=DEPLOY, capture_output=True, text=True, timeout=60)
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_nginx_puts_two_replicas_behind_one_address(serve_glassbox, scripted_model, postgres_server, tmp_path,
                                                    browser_page):  # noqa: F811
    nginx = tool("nginx")
    scripted_model.default = Reply(tokens=["Within ", "45 days."], delay_s=0.05)
    shared = fresh_database(postgres_server)
    replicas = [serve_glassbox(database_url=shared) for _ in range(2)]
    listen = free_port()
    config = (DEPLOY / "nginx.conf").read_text()
    config = config.replace("127.0.0.1:7861", replicas[0].url.removeprefix("http://"))
    config = config.replace("127.0.0.1:7862", replicas[1].url.removeprefix("http://"))
    config = config.replace("listen 127.0.0.1:8080", f"listen 127.0.0.1:{listen}")
    if os.geteuid() == 0:  # its workers would run as nobody, who may not enter pytest's temp dir
        config = "user root;\n" + config
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    (prefix / "nginx.conf").write_text(config)
    server = subprocess.Popen([nginx, "-c", str(prefix / "nginx.conf"), "-p", str(prefix), "-g", "daemon off;"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{listen}"
    try:
        for _ in range(100):
            try:
                httpx.get(f"{url}/api/health", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        answer = httpx.post(f"{url}/api/chat", json={"message": "How long can I return a faulty item?"}, timeout=30)
        assert answer.json()["answer"] == "Within 45 days."
        page = browser_page  # the page through nginx: Gradio's queue streams, the answer arrives
        page.goto(url)
        page.wait_for_selector("#gb-status:has-text('ready')", timeout=20_000)
        page.fill("#gb-input textarea", "And opened headphones?")
        page.click("#gb-send")
        page.wait_for_selector("#gb-chat :text('Within 45 days.')", timeout=20_000)
        page.wait_for_selector("#gb-panel :text('run_end')", timeout=20_000)
        for replica in replicas:  # one store: each replica lists both runs
            assert len(httpx.get(f"{replica.url}/api/runs").json()["runs"]) == 2
    finally:
        server.terminate()
        server.wait(10)
