"""Announcements reach the lobby sockets of every process (PROTOCOL.md "Announcements":
every open socket on every process), on two processes on Postgres + Redis."""

from __future__ import annotations

from pathlib import Path

from tests.pgutil import migrated_database
from tests.server_harness import Api
from tests.system.test_cluster_processes import ClusterProcess, redis_run
from tests.system.test_lobby import open_lobby

ADMIN_TOKEN = "lobby-admin-token"


async def test_lobby_sockets_on_both_processes_hear_announcements(tmp_path: Path) -> None:
    async with redis_run() as (_redis, prefix), migrated_database() as url:
        servers = [ClusterProcess(tmp_path / "data", url, prefix) for _ in range(2)]
        for server in servers:
            server.env["GAMESOCKET_ADMIN_TOKEN"] = ADMIN_TOKEN
        api = None
        try:
            servers[0].start()
            servers[1].start()
            api = Api(servers[0].base_url)
            guest = await api.guest()
            lobbies = [
                await open_lobby(servers[0].port, guest),
                await open_lobby(servers[1].port),
            ]
            admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            reply = await api.http.post(
                "/api/admin/announce", json={"text": " doors close soon "}, headers=admin
            )
            assert reply.status_code == 200, reply.text
            for lobby in lobbies:
                message = await lobby.client.expect("announcement")
                assert message == {
                    "type": "announcement",
                    "text": "doors close soon",
                    "at": reply.json()["at"],
                }
                await lobby.client.send(type="ping")
                assert (await lobby.client.expect("pong"))["type"] == "pong"
        finally:
            if api is not None:
                await api.close()
            for server in servers:
                server.stop()
