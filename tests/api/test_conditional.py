"""Conditional GETs: ETag and If-None-Match -> 304 on status, maps and exports."""

from __future__ import annotations

from typing import Any

from tests.api.helpers import spec, submit, wait_status

TAGGED = ["", "/phase-map", "/phase-map?metric=final_rel", "/boundary", "/runs?limit=5",
          "/runs?limit=5&outcome=converged", "/export.csv",
          "/export.csv?level=cells", "/export.parquet"]


def test_finished_sweep_answers_304_until_it_changes(client: Any) -> None:
    sweep = submit(client, spec("etag", steps=30))
    wait_status(client, sweep["id"], "done")
    base = f"/api/v1/sweeps/{sweep['id']}"
    tags = {}
    for path in TAGGED:
        first = client.get(base + path)
        assert first.status_code == 200, (path, first.text)
        tag = first.headers["etag"]
        assert tag.startswith('W/"') and first.headers["cache-control"] == "no-cache"
        again = client.get(base + path, headers={"If-None-Match": tag})
        assert again.status_code == 304, (path, again.status_code)
        assert again.content == b"" and again.headers["etag"] == tag
        # a list of tags, the strong form of the same tag and * match too
        assert client.get(base + path, headers={
            "If-None-Match": f'"x", {tag[2:]}'}).status_code == 304
        assert client.get(base + path, headers={"If-None-Match": "*"}).status_code == 304
        assert client.get(base + path, headers={
            "If-None-Match": 'W/"other"'}).status_code == 200
        if "export" not in path:  # answered again (from a cache where one is kept): the same
            assert client.get(base + path).json() == first.json()
        tags[path] = tag
    assert len(set(tags.values())) == len(TAGGED)  # the query string is part of the tag
    # deleting it: the old tag gives 404, never a stale 304
    assert client.delete(base).status_code == 204
    assert client.get(base, headers={"If-None-Match": tags[""]}).status_code == 404


def test_running_sweep_maps_are_tagged_by_their_done_chunks(client: Any) -> None:
    sweep = submit(client, spec("etag running", steps=3000, beta2={"log1m": [0.01, 1.0],
                                                                  "num": 12}))
    base = f"/api/v1/sweeps/{sweep['id']}"
    status = client.get(base)
    if status.json()["status"] in ("queued", "running"):
        assert "etag" not in status.headers  # progress and ETA move every second
    first = client.get(base + "/phase-map")
    again = client.get(base + "/phase-map", headers={"If-None-Match": first.headers["etag"]})
    # equal unless a chunk landed in between, and then the map did change
    assert again.status_code == 304 or again.json()["n_results"] != first.json()["n_results"]
    done = wait_status(client, sweep["id"], "done", timeout=300)
    final = client.get(base + "/phase-map", headers={"If-None-Match": first.headers["etag"]})
    assert final.status_code == 200 and final.json()["n_results"] == done["total_runs"]
