"""`voices/audition serve` takes verdicts only from its own page, merges them, and serves only its folder.

Every check runs against a real `voices/audition serve` on 127.0.0.1 (a free port, bounded requests, the
server stopped at the end); the cross-origin attack also runs from headless Chromium on a second port.
The audition folder is made by hand (renders.json and the real page), so no model is rendered here.
"""
from __future__ import annotations

import http.client
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Iterator

import pytest

from tests.models import voices_fixtures
from voices import audition, markers

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "voices" / "audition"
FEATURES = [m["id"] for m in markers.MARKERS] + ["overall"]
ENV = {**os.environ, "TTSRIG_PYTHON": sys.executable, "HF_HUB_OFFLINE": "1"}


def make_folder(folder: Path, checkpoints: int = 2) -> Path:
    """An audition folder as `render` leaves it: WAVs, renders.json and the page."""
    folder.mkdir(parents=True)
    renders = []
    for index in range(1, checkpoints + 1):
        label = f"epoch_{index:04d}"
        (folder / f"{index:02d}-{label}.wav").write_bytes(b"RIFF\0\0\0\0WAVE")
        renders.append({"checkpoint": f"/runs/x/{label}.safetensors", "label": label,
                        "file": f"{index:02d}-{label}.wav", "seconds": 1.0, "rtf": 0.5})
    data = {"engine": "strong", "passage": markers.PASSAGE, "reference": "ref.wav", "seed": 0, "renders": renders,
            "markers": markers.MARKERS, "verdict_labels": markers.VERDICTS, "guidance": markers.GUIDANCE}
    (folder / "renders.json").write_text(json.dumps(data))
    (folder / "index.html").write_text(audition.page({**data, "verdicts": {}}))
    return folder


@pytest.fixture
def folder(tmp_path) -> Path:
    made = make_folder(tmp_path / "aud")
    (made / "verdicts.json").write_text(json.dumps({"epoch_0002": {"happy": "weak"}}) + "\n")
    return made


def serve_command(folder: Path, *args: str) -> list[str]:
    return [str(LAUNCHER), "serve", str(folder), *args]


@contextmanager
def serving(folder: Path, log: Path) -> Iterator[int]:
    """A real `voices/audition serve` on a free port; yields the port, stops the server at the end."""
    out = log.with_suffix(".out")
    with open(out, "w") as stdout, open(log, "w") as stderr:
        proc = subprocess.Popen(serve_command(folder, "--port", "0"), stdout=stdout, stderr=stderr, cwd="/tmp",
                                env=ENV)
    try:
        deadline = time.monotonic() + 60
        while not (found := re.search(r"http://127\.0\.0\.1:(\d+)/", out.read_text())):
            assert proc.poll() is None, f"serve exited: {log.read_text()}"
            assert time.monotonic() < deadline, "serve did not print its address in 60 s"
            time.sleep(0.05)
        yield int(found.group(1))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def request(port: int, method: str, path: str, body: bytes | str | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, bytes, http.client.HTTPResponse]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read(), response
    finally:
        connection.close()


def post(port: int, changes: object, content_type: str = "application/json", **headers: str) -> tuple[int, bytes]:
    body = changes if isinstance(changes, (bytes, str)) else json.dumps(changes)
    status, text, _ = request(port, "POST", "/verdicts", body, {"Content-Type": content_type, **headers})
    return status, text


def test_a_cross_origin_post_is_refused_and_the_file_is_unchanged(folder, tmp_path):
    before = (folder / "verdicts.json").read_bytes()
    attack = {"epoch_0001": {"bath": "garbled"}}
    with serving(folder, tmp_path / "serve.log") as port:
        refused = [
            # what any web page can send without a preflight: a "simple" text/plain POST
            post(port, attack, "text/plain", Origin="http://127.0.0.1:1"),
            post(port, attack, "text/plain;charset=UTF-8", Origin="http://evil.example"),
            post(port, attack, Origin="http://evil.example"),                 # JSON, but from another origin
            post(port, attack, Origin="null"),                                # sandboxed frames, file:// pages
            post(port, attack, Origin=f"http://127.0.0.1:{port}.evil.example"),
            post(port, attack, **{"Sec-Fetch-Site": "cross-site"}),           # a browser that left out Origin
        ]
        preflight = request(port, "OPTIONS", "/verdicts", headers={
            "Origin": "http://evil.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type"})
    assert [status for status, _ in refused] == [403] * len(refused), refused
    assert all(b"Origin" in text or b"another site" in text for _, text in refused)
    assert preflight[0] >= 400 and preflight[2].getheader("Access-Control-Allow-Origin") is None
    assert (folder / "verdicts.json").read_bytes() == before
    assert "refused POST /verdicts: 403" in (tmp_path / "serve.log").read_text()


def test_a_foreign_host_is_refused_for_reads_and_writes(folder, tmp_path):
    before = (folder / "verdicts.json").read_bytes()
    with serving(folder, tmp_path / "serve.log") as port:
        for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1:{port + 1}", f"localhost.evil:{port}", ""):
            headers = {"Host": host}
            page = request(port, "GET", "/index.html", headers=headers)
            saved = request(port, "GET", "/verdicts", headers=headers)
            write = post(port, {"epoch_0001": {"bath": "garbled"}}, **headers)
            assert (page[0], saved[0], write[0]) == (403, 403, 403), host
            assert b"audition-data" not in page[1] and b"happy" not in saved[1]
        assert request(port, "GET", "/index.html", headers={"Host": f"localhost:{port}"})[0] == 200
    assert (folder / "verdicts.json").read_bytes() == before


def test_an_oversized_body_is_refused_before_it_is_read(folder, tmp_path):
    before = (folder / "verdicts.json").read_bytes()
    with serving(folder, tmp_path / "serve.log") as port:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            # ten megabytes announced, none sent: a server that reads the body first never answers
            sock.sendall(f"POST /verdicts HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {10 * 1024 * 1024}\r\n\r\n{{".encode())
            received = b""
            while chunk := sock.recv(4096):  # the server answers and closes; a 10 s timeout bounds the wait
                received += chunk
        answer = received.decode("latin-1")
        small_enough = post(port, {"epoch_0001": {"bath": "right", "happy": "weak"}})
    assert answer.startswith("HTTP/1.0 413") or answer.startswith("HTTP/1.1 413"), answer
    assert "limit" in answer
    assert small_enough[0] == 200
    assert json.loads((folder / "verdicts.json").read_text())["epoch_0002"] == json.loads(before)["epoch_0002"]


def test_a_body_that_is_not_json_is_refused_with_415(folder, tmp_path):
    before = (folder / "verdicts.json").read_bytes()
    change = json.dumps({"epoch_0001": {"bath": "garbled"}})
    with serving(folder, tmp_path / "serve.log") as port:
        answers = [post(port, change, kind)[0] for kind in
                   ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                    "application/json; charset=latin-1")]
        missing = request(port, "POST", "/verdicts", change)[0]
    assert answers == [415] * 4 and missing == 415
    assert (folder / "verdicts.json").read_bytes() == before


def test_malformed_json_and_unknown_entries_are_refused_with_400(folder, tmp_path):
    before = (folder / "verdicts.json").read_bytes()
    bad = [b"{not json", b"[]", b'"right"', b"{}", b"\xff\xfe{}",
           json.dumps({"epoch_0009": {"bath": "right"}}),                     # a checkpoint of no render here
           json.dumps({"epoch_0001": {"nasal": "right"}}),                    # a feature the page has not
           json.dumps({"epoch_0001": {"bath": "great"}}),                     # a verdict not in the fixed set
           json.dumps({"epoch_0001": {"bath": ["right"]}}),
           json.dumps({"epoch_0001": "right"})]
    with serving(folder, tmp_path / "serve.log") as port:
        answers = [post(port, body) for body in bad]
    assert [status for status, _ in answers] == [400] * len(bad), answers
    assert b"epoch_0009" in answers[5][1] and b"nasal" in answers[6][1]
    assert (folder / "verdicts.json").read_bytes() == before


def test_two_browsers_posting_different_entries_keep_both(folder, tmp_path):
    with serving(folder, tmp_path / "serve.log") as port:
        first = post(port, {"epoch_0001": {"bath": "right"}})
        second = post(port, {"epoch_0001": {"foot-strut": "over"}})       # another browser, which never saw the first
        cleared = post(port, {"epoch_0002": {"happy": ""}, "epoch_0001": {"overall": "garbled"}})
        current = request(port, "GET", "/verdicts")
    assert first[0] == second[0] == cleared[0] == 200
    expected = {"epoch_0001": {"bath": "right", "foot-strut": "over", "overall": "garbled"}}
    assert json.loads((folder / "verdicts.json").read_text()) == expected
    assert json.loads(cleared[1]) == expected and json.loads(current[1]) == expected  # what the page then shows


def test_many_concurrent_posts_lose_nothing_and_every_read_parses(tmp_path):
    folder = make_folder(tmp_path / "aud", checkpoints=8)
    changes = [{f"epoch_{i:04d}": {feature: markers_value(i, feature)}} for i in range(1, 9) for feature in FEATURES]
    reads, problems, done = [0], [], threading.Event()

    def reader() -> None:
        while not done.is_set():
            try:
                if (folder / "verdicts.json").exists():
                    json.loads((folder / "verdicts.json").read_text())
                    reads[0] += 1
            except (ValueError, OSError) as exc:  # a half-written file, or one renamed away mid-read
                problems.append(repr(exc))

    # two servers on one folder: the lock holds across processes, not only across threads
    with serving(folder, tmp_path / "a.log") as a, serving(folder, tmp_path / "b.log") as b:
        watcher = threading.Thread(target=reader)
        watcher.start()
        results: list[int] = []
        posters = [threading.Thread(target=lambda c=c, p=p: results.append(post(p, c)[0]))
                   for c, p in zip(changes, [a, b] * len(changes))]
        for thread in posters:
            thread.start()
        for thread in posters:
            thread.join(timeout=60)
        done.set()
        watcher.join(timeout=10)
    assert results == [200] * len(changes)
    assert not problems and reads[0] > 0, problems[:3]
    saved = json.loads((folder / "verdicts.json").read_text())
    assert saved == {f"epoch_{i:04d}": {f: markers_value(i, f) for f in FEATURES} for i in range(1, 9)}
    assert not list(folder.glob(".*ttsrig-tmp"))


def markers_value(index: int, feature: str) -> str:
    choices = [v for v in markers.VERDICTS if v]
    return choices[(index + FEATURES.index(feature)) % len(choices)]


def test_a_port_in_use_is_one_line_and_exit_2(folder):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(serve_command(folder, "--port", str(port)), capture_output=True, text=True,
                              timeout=60, cwd="/tmp", env=ENV)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert f"port {port}" in done.stderr and "--port" in done.stderr


@pytest.mark.parametrize("case", ["missing", "file", "empty", "website", "not-json", "wrong-shape"])
def test_serve_refuses_what_it_cannot_serve_safely(tmp_path, case):
    target = tmp_path / "target"
    expected = {"missing": "does not exist", "file": "is a file", "empty": "not an audition folder",
                "website": "not an audition folder", "not-json": "is not JSON", "wrong-shape": "not an object"}[case]
    if case == "file":
        target.write_text("x")
    elif case in ("empty", "website"):
        target.mkdir()
        if case == "website":  # the user's own page: never served as an audition, never written into
            (target / "index.html").write_text("<p>my page</p>")
    elif case in ("not-json", "wrong-shape"):
        make_folder(target)
        (target / "verdicts.json").write_text('{"epoch_0001": {"bath": "right"' if case == "not-json"
                                              else '{"epoch_0001": "right"}')
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    done = subprocess.run(serve_command(target, "--port", "0"), capture_output=True, text=True, timeout=30,
                          cwd="/tmp", env=ENV)
    assert done.returncode == 2, done.stdout + done.stderr
    assert expected in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_only_the_folders_own_files_are_served(folder, tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text('{"password": "hunter2"}')
    (folder / "leak.json").symlink_to(secret)            # a link out of the folder
    (folder / "leak.wav").symlink_to("/etc/passwd")
    (folder / "sub").mkdir()
    (folder / "sub" / "inner.json").write_text('{"password": "hunter2"}')
    (folder / ".verdicts.json.x.ttsrig-tmp").write_text('{"password": "hunter2"}')
    (folder / "notes.txt").write_text("hunter2")
    paths = ["/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/%2e%2e", "/..%2f..%2fsecret.json",
             "/%2e%2e%2fsecret.json", "/leak.json", "/leak.wav", "/sub/", "/sub/inner.json", "/sub%2finner.json",
             "/.verdicts.json.x.ttsrig-tmp", "/notes.txt", "/%ff.json", "//etc/passwd"]
    with serving(folder, tmp_path / "serve.log") as port:
        answers = {path: request(port, "GET", path) for path in paths}
        own = {path: request(port, "GET", path)[0] for path in ("/", "/index.html", "/01-epoch_0001.wav",
                                                                 "/renders.json", "/verdicts.json", "/verdicts")}
    for path, (status, body, _) in answers.items():
        assert status == 404, (path, status)
        assert b"hunter2" not in body and b"root:" not in body, path
    assert set(own.values()) == {200}, own


def test_a_verdicts_file_broken_while_serving_is_never_written_over(folder, tmp_path):
    with serving(folder, tmp_path / "serve.log") as port:
        (folder / "verdicts.json").write_text('{"epoch_0002": {"happy": "weak"}, ')  # a hand edit, half done
        status, text = post(port, {"epoch_0001": {"bath": "right"}})
        read = request(port, "GET", "/verdicts")[0]
    assert status == 409 and b"not JSON" in text and read == 409
    assert (folder / "verdicts.json").read_text() == '{"epoch_0002": {"happy": "weak"}, '


# -- render: what it writes never replaces what the user owns ---------------------------------------------

def render(tmp_path: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(LAUNCHER), "render", "strong", str(tmp_path / "run" / "epoch_*.safetensors"),
                           "--ref", str(tmp_path / "ref.wav"), "--out", str(out), "--device", "cpu", *extra],
                          capture_output=True, text=True, timeout=300, cwd="/tmp", env=ENV)


@pytest.mark.parametrize("case", ["out-is-a-file", "out-holds-other-files", "verdicts-not-json",
                                  "verdicts-would-hide", "verdicts-missing", "passage-not-utf8"])
def test_render_refuses_before_it_writes_over_anything(tmp_path, case):
    out = tmp_path / "out"
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "epoch_0001.safetensors").write_bytes(b"never read: the checks come first")
    extra: list[str] = []
    if case == "out-is-a-file":
        out.write_text("my notes")
        expected = "is a file"
    elif case == "out-holds-other-files":
        out.mkdir()
        (out / "index.html").write_text("<p>my own site</p>")
        expected = "holds other files"
    elif case == "passage-not-utf8":
        (tmp_path / "passage.txt").write_bytes("Caf\u00e9 au lait.".encode("latin-1"))
        extra = ["--passage", str(tmp_path / "passage.txt")]
        expected = "is not UTF-8"
    else:
        make_folder(out)
        (out / "verdicts.json").write_text('{"epoch_0001": {"bath": "right"}}')
        if case == "verdicts-not-json":
            (out / "verdicts.json").write_text('{"epoch_0001": ')
            expected = "is not JSON"
        elif case == "verdicts-would-hide":
            (tmp_path / "other.json").write_text('{"epoch_0001": {"bath": "weak"}}')
            extra = ["--verdicts", str(tmp_path / "other.json")]
            expected = "would hide the verdicts"
        else:
            extra = ["--verdicts", str(tmp_path / "absent.json")]
            expected = "--verdicts " + str(tmp_path / "absent.json") + " does not exist"
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    done = render(tmp_path, out, *extra)
    assert done.returncode == 2, done.stdout + done.stderr
    assert expected in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_two_checkpoints_with_one_name_get_two_labels():
    runs = [Path("runs/a/epoch_0005.safetensors"), Path("runs/b/epoch_0005.safetensors"), Path("runs/a/epoch_0006.pt")]
    assert audition.unique_labels(runs) == ["a/epoch_0005", "b/epoch_0005", "a/epoch_0006"]
    assert audition.unique_labels(runs[::2]) == ["epoch_0005", "epoch_0006"]  # unchanged where names differ
    same = [Path("x/a/e.pt"), Path("y/a/e.pt")]
    assert len(set(audition.unique_labels(same))) == 2


# -- the attack from a browser -----------------------------------------------------------------------------

ATTACK = """<!doctype html><meta charset="utf-8"><title>not an audition</title>
<iframe name="sink"></iframe>
<iframe src="__TARGET__/index.html?selftest=1"></iframe>
<form id="form" method="POST" enctype="text/plain" action="__TARGET__/verdicts" target="sink">
<input name='{"epoch_0001": {"bath": "garbled", "x": "' value='"}}'></form>
<script>
const target = "__TARGET__/verdicts";
const payload = JSON.stringify({ epoch_0001: { bath: "garbled" } });
const results = [];
async function attempt(name, action) {
  try { results.push(name + ": " + await action()); } catch (e) { results.push(name + ": failed " + e); }
}
async function attack() {
  await attempt("no-cors text/plain", () => fetch(target, { method: "POST", mode: "no-cors", body: payload,
                                                            headers: { "Content-Type": "text/plain" } }).then(r => r.type));
  await attempt("cors json", () => fetch(target, { method: "POST", body: payload,
                                                   headers: { "Content-Type": "application/json" } }).then(r => r.status));
  await attempt("read verdicts", () => fetch(target).then(r => r.text()));
  await attempt("beacon", () => navigator.sendBeacon(target, new Blob([payload], { type: "text/plain" })));
  await attempt("popup", () => String(!!window.open("__TARGET__/index.html?selftest=1")));
  document.getElementById("form").submit();
  await new Promise(resolve => setTimeout(resolve, 1500));
  document.body.appendChild(Object.assign(document.createElement("pre"),
                                          { id: "done", textContent: JSON.stringify(results) }));
}
attack();
</script>
"""


def chromium(url: str, *flags: str) -> str:
    return voices_fixtures.chromium(url, *flags).stdout


@contextmanager
def attacker_site(folder: Path, target: str) -> Iterator[int]:
    """Another local web site (another port), as any page the user visits while `serve` runs."""
    folder.mkdir()
    (folder / "attack.html").write_text(ATTACK.replace("__TARGET__", target))
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        yield site.server_address[1]
    finally:
        site.shutdown()
        site.server_close()


def test_a_web_page_in_chromium_cannot_change_verdicts_and_the_real_page_can(folder, tmp_path):
    before = (folder / "verdicts.json").read_bytes()
    log = tmp_path / "serve.log"
    with serving(folder, log) as port:
        target = f"http://127.0.0.1:{port}"
        with attacker_site(tmp_path / "site", target) as site:
            attacked = chromium(f"http://127.0.0.1:{site}/attack.html")
        # DNS rebinding: a name of the attacker's that now resolves to 127.0.0.1 serves the page same-origin
        rebound = chromium(f"http://rebound.test:{port}/index.html?selftest=1",
                           "--host-resolver-rules=MAP rebound.test 127.0.0.1")
        assert (folder / "verdicts.json").read_bytes() == before
        own = chromium(f"{target}/index.html?selftest=1")
    results = json.loads(re.search(r'<pre id="done">(.*?)</pre>', attacked).group(1).replace("&quot;", '"'))
    refused = log.read_text()
    # the text/plain fetch, the beacon and the form all reached the server, and were refused there
    assert refused.count("refused POST /verdicts: 403 Origin http://127.0.0.1:") >= 3, refused
    assert "refused GET /index.html: 403 requested by another site" in refused  # the framed page never ran
    assert any(r.startswith("read verdicts: failed") for r in results), results  # no CORS: nothing read either
    assert "refused GET /index.html: 403 Host rebound.test" in refused
    assert "selftest" not in rebound and "epoch_0001" not in rebound

    report = json.loads(re.search(r'<pre id="selftest">(.*?)</pre>', own).group(1))
    assert report["saved"] is True
    assert report["shown_at_load"] == {"epoch_0002": {"happy": "weak"}}  # from the server, not the page's copy
    # the page loaded the server's verdicts and sent only its change: the other checkpoint's verdict is kept
    assert json.loads((folder / "verdicts.json").read_text()) == {"epoch_0001": {"bath": "right"},
                                                                  "epoch_0002": {"happy": "weak"}}
    assert report["verdicts"] == report["shown"] == json.loads((folder / "verdicts.json").read_text())


# -- issue: trust, second round: a linked verdicts.json, and clients that hold connections open -----------

def test_a_verdicts_json_that_is_a_link_is_never_read_or_written_through(folder, tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text('{"root": {"password": "hunter2"}}')
    (folder / "verdicts.json").unlink()
    (folder / "verdicts.json").symlink_to(secret)
    done = subprocess.run(serve_command(folder, "--port", "0"), capture_output=True, text=True, timeout=30,
                          cwd="/tmp", env=ENV)
    assert done.returncode == 2 and "is a symbolic link" in done.stderr and "hunter2" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    (folder / "verdicts.json").unlink()  # serve starts; then the link appears (a sync tool, another user)
    with serving(folder, tmp_path / "serve.log") as port:
        (folder / "verdicts.json").symlink_to(secret)
        status, body, _ = request(port, "GET", "/verdicts")
        posted, answer = post(port, {"epoch_0001": {"bath": "right"}})
    assert status == 409 and b"hunter2" not in body and posted == 409 and b"hunter2" not in answer
    assert secret.read_text() == '{"root": {"password": "hunter2"}}' and (folder / "verdicts.json").is_symlink()


def test_clients_that_hold_connections_open_leave_the_terminal_quiet(folder, tmp_path, monkeypatch, capfd):
    monkeypatch.setattr(audition.Handler, "timeout", 0.5)
    httpd = audition.server(folder, 0)
    port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    idle = []
    try:
        for _ in range(100):  # beyond MAX_CLIENTS: some are closed at once, the rest time out
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        for _ in range(20):  # half a request, then a reset
            half = socket.create_connection(("127.0.0.1", port), timeout=5)
            half.sendall(b"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port)
            half.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            half.close()
        time.sleep(2.0)
        status, _, _ = request(port, "GET", "/index.html")  # the page still loads
    finally:
        for connection in idle:
            connection.close()
        httpd.shutdown()
        httpd.server_close()
    assert status == 200
    err = capfd.readouterr().err
    assert "Traceback" not in err and "timed out" not in err and err.strip() == "", err[-2000:]
    assert httpd.dropped >= 100
