"""/get/status: a task id answers its status, and not across users when user_id is given."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from memos.api import create_app
from memos.settings import load_settings


def test_task_status_is_scoped_when_user_id_is_given(tmp_path: Path) -> None:
    settings = load_settings({"data_dir": tmp_path, "embedder": {"kind": "hash"}}, environ={})
    with TestClient(create_app(settings)) as client:
        added = client.post(
            "/add/message",
            json={"user_id": "alice", "conversation_id": "c1",
                  "messages": [{"role": "user", "content": "I like tea"}]},
        ).json()
        task = added["data"]["task_id"]
        ok = client.post("/get/status", json={"task_id": task, "user_id": "alice"}).json()
        assert ok["code"] == 0 and ok["data"]["status"] == "completed"
        other = client.post("/get/status", json={"task_id": task, "user_id": "bob"})
        assert other.json()["code"] == 50131
        assert client.post("/get/status", json={"task_id": "nope"}).json()["code"] == 50131
