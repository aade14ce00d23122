"""The .deb fetch action: sources in order, every byte checked, a damaged cache healed, failures explained."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "rules"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aptrepo import serve_directory  # noqa: E402
from debian.actions.fetch_debs import FetchDeb, FetchSpec, fetch_all, failure_message, main, report  # noqa: E402
from services import free_port  # noqa: E402

POOL = "pool/main/t/tool"


def make_debs(count: int = 3) -> list[tuple[FetchDeb, bytes]]:
    made = []
    for i in range(count):
        content = f"!<arch>\ndeb number {i}\n".encode() * (i + 1)
        made.append((FetchDeb(f"pkg{i}", f"1.{i}-1", "amd64", hashlib.sha256(content).hexdigest(), len(content),
                              f"{POOL}/pkg{i}_1.{i}-1_amd64.deb", "fixture"), content))
    return made


def put_on_mirror(root: Path, made) -> None:
    for deb, content in made:
        (root / deb.path).parent.mkdir(parents=True, exist_ok=True)
        (root / deb.path).write_bytes(content)


def spec_for(made, cache: Path | None, mirror: str, **changes) -> FetchSpec:
    values = dict(debs=tuple(deb for deb, _ in made), order=("cache", "mirror", "archive", "snapshot"),
                  cache_dir=str(cache) if cache else "", mirrors={"fixture": mirror}, archive="", snapshot_url="",
                  snapshot_timestamp="", parallelism=4, timeout=5.0)
    values.update(changes)
    return FetchSpec(**values)


def outputs(out: Path, made) -> None:
    for deb, content in made:
        assert (out / deb.filename).read_bytes() == content


def test_mirror_then_cache(tmp_path):
    made = make_debs()
    mirror, cache = tmp_path / "mirror", tmp_path / "cache"
    put_on_mirror(mirror, made)
    with serve_directory(mirror) as url:
        first = fetch_all(spec_for(made, cache, url), str(tmp_path / "out1"))
    assert report(first)["served"] == {f"mirror {url}": 3}
    outputs(tmp_path / "out1", made)
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{d.sha256}.deb" for d, _ in made)
    # The mirror is gone: the cache serves everything.
    second = fetch_all(spec_for(made, cache, f"http://127.0.0.1:{free_port()}"), str(tmp_path / "out2"))
    assert report(second)["served"] == {"cache": 3}
    outputs(tmp_path / "out2", made)


def test_a_damaged_cached_deb_is_moved_aside_and_fetched_again(tmp_path):
    made = make_debs()
    mirror, cache = tmp_path / "mirror", tmp_path / "cache"
    put_on_mirror(mirror, made)
    cache.mkdir()
    for deb, content in made:
        (cache / f"{deb.sha256}.deb").write_bytes(content)
    damaged = cache / f"{made[1][0].sha256}.deb"
    damaged.write_bytes(made[1][1][:-1] + b"X")  # one byte changed
    (cache / f"{made[2][0].sha256}.deb").write_bytes(made[2][1][:5])  # truncated
    with serve_directory(mirror) as url:
        outcomes = fetch_all(spec_for(made, cache, url), str(tmp_path / "out"))
    summary = report(outcomes)
    assert summary["served"] == {"cache": 1, f"mirror {url}": 2}
    assert [m["name"] for m in summary["moved_aside"]] == ["pkg1", "pkg2"]
    outputs(tmp_path / "out", made)
    assert damaged.read_bytes() == made[1][1]  # healed
    aside = sorted((cache / "damaged").iterdir())
    assert len(aside) == 2 and aside[0].name.startswith(made[1][0].sha256) or aside[1].name.startswith(made[1][0].sha256)


def test_wrong_and_truncated_downloads_are_refused_and_named(tmp_path):
    made = make_debs(2)
    mirror = tmp_path / "mirror"
    put_on_mirror(mirror, made)
    (mirror / made[0][0].path).write_bytes(made[0][1][:-1] + b"X")
    (mirror / made[1][0].path).write_bytes(made[1][1][:10])
    with serve_directory(mirror) as url:
        outcomes = fetch_all(spec_for(made, None, url), str(tmp_path / "out"))
    failed = [o for o in outcomes if not o.served_by]
    message = failure_message(failed, spec_for(made, None, url))
    assert "pkg0 1.0-1" in message and f"{url}/{made[0][0].path}: wrong bytes (sha256 " in message
    assert f"pkg1 1.1-1" in message and f"truncated: 10 of {made[1][0].size} bytes" in message
    assert "proxy" in message and "cut short" in message
    assert not list((tmp_path / "out/debs").iterdir())  # nothing half-written is left


class EarlyClose(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the base class's name
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b"x" * 10)

    def log_message(self, format, *args):  # noqa: A002
        pass


@contextmanager
def early_close_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), EarlyClose)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_connection_closed_mid_download_is_a_truncated_download(tmp_path):
    made = make_debs(1)
    made = [(FetchDeb(**{**made[0][0].__dict__, "size": 1000}), made[0][1])]
    with early_close_server() as url:
        outcomes = fetch_all(spec_for(made, None, url), str(tmp_path / "out"))
    where, what = outcomes[0].tried[0]
    assert where == f"{url}/{made[0][0].path}" and what.startswith("truncated: ") and "10 " in what


def test_mirror_down_and_404_name_package_version_urls_and_fix(tmp_path, capsys, monkeypatch):
    made = make_debs(2)
    mirror = tmp_path / "mirror"
    put_on_mirror(mirror, made[1:])
    down = f"http://127.0.0.1:{free_port()}"
    with serve_directory(mirror) as url:
        spec = spec_for(made, tmp_path / "cache", url, mirrors={"fixture": url})
        (tmp_path / "spec.json").write_text(json.dumps(spec.to_json()))
        monkeypatch.chdir(tmp_path)
        assert main([str(tmp_path / "spec.json")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: 1 locked .deb(s) could not be fetched")
    assert f"pkg0 1.0-1 (amd64, sha256 {made[0][0].sha256}" in err
    assert f"{tmp_path / 'cache'}/{made[0][0].sha256}.deb: not in the cache" in err
    assert f"{url}/{made[0][0].path}: HTTP 404" in err
    assert "Debian keeps only the newest version" in err and "[debian].archive" in err
    assert "pants archive-debs" in err and "generate-lockfiles" in err
    spec = spec_for(made, None, down)
    outcomes = fetch_all(spec, str(tmp_path / "out"))
    message = failure_message(outcomes, spec)
    assert f"{down}/{made[0][0].path}: unreachable (" in message and "check the network" in message


def test_snapshot_template_is_tried_after_the_mirror(tmp_path):
    made = make_debs(1)
    served = tmp_path / "served"
    put_on_mirror(served / "archive/debian/20240101T000000Z", made)
    (served / "debian").mkdir()
    with serve_directory(served) as url:
        spec = spec_for(made, None, f"{url}/debian", snapshot_url=url + "/archive/{archive}/{timestamp}",
                        snapshot_timestamp="20240101T000000Z")
        outcomes = fetch_all(spec, str(tmp_path / "out"))
    assert outcomes[0].served_by == f"snapshot {url}/archive/debian/20240101T000000Z"
    assert outcomes[0].tried[0][1].startswith("HTTP 404")


def test_unknown_fetch_order_is_refused():
    from types import SimpleNamespace

    from debian.errors import FetchOptionError
    from debian.packages import fetch_spec

    debian = SimpleNamespace(fetch_order=["cache", "ftp"], deb_cache="", archive="", snapshot_url="",
                             fetch_parallelism=1, fetch_timeout=1.0)
    with pytest.raises(FetchOptionError, match=r"\[debian\].fetch_order is \['cache', 'ftp'\]: give one or more of "
                                               r"cache, mirror, archive, snapshot"):
        fetch_spec((), debian, None, None)


@pytest.mark.parametrize("archive, snapshot_url, message", [
    ("registry-without-repository", "", r"\[debian\].archive is 'registry-without-repository': write it as "),
    ("", "https://snapshot.debian.org/{archive}/{when}", r"\[debian\].snapshot_url is .* which names 'when'"),
])
def test_archive_and_snapshot_options_are_checked_before_fetching(archive, snapshot_url, message):
    from types import SimpleNamespace

    from debian.errors import FetchOptionError
    from debian.packages import fetch_spec

    debian = SimpleNamespace(fetch_order=["cache", "mirror"], deb_cache="", archive=archive,
                             snapshot_url=snapshot_url, fetch_parallelism=1, fetch_timeout=1.0)
    with pytest.raises(FetchOptionError, match=message):
        fetch_spec((), debian, None, None)


def test_a_transient_failure_is_tried_again(tmp_path, monkeypatch):
    import debian.actions.fetch_debs as fetch_debs

    monkeypatch.setattr(fetch_debs, "RETRY_DELAY", 0.01)
    made = make_debs(1)
    content = made[0][1]
    calls = []

    class FlakyThenFine(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            calls.append(self.path)
            if len(calls) == 1:
                self.send_error(503, "busy")
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def log_message(self, format, *args):  # noqa: A002
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FlakyThenFine)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        outcomes = fetch_all(spec_for(made, None, url), str(tmp_path / "out"))
    finally:
        server.shutdown()
        server.server_close()
    assert outcomes[0].served_by == f"mirror {url}" and len(calls) == 2
