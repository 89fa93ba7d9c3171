"""Downloads against an HTTP server on 127.0.0.1 that these tests start and stop.

The server serves small synthetic IDX files whose checksums are pinned into a
registry entry made for the test, plus broken variants: a 404 mirror, a
stalling mirror, and a mirror serving the wrong bytes. No test touches the
internet.
"""

import errno
import hashlib
import os
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import minae
from minae.data import loading, registry
from minae.data.fetching import download
from minae.data.loading import load
from minae.errors import DataError, DownloadError

from .conftest import make_files

STALL_SECONDS = 2.0   # how long the stalling mirror sleeps; the client gives up after 0.3 s


@pytest.fixture
def synthetic(tmp_path, monkeypatch):
    """Synthetic files, a registry entry pinning their checksums, and an empty world."""
    folder = make_files(tmp_path / "src", n_train=20, n_test=8, seed=5)
    files = {}
    for role, name in registry.FILENAMES.items():
        data = (folder / name).read_bytes()
        files[role] = registry.FileInfo(name, len(data), hashlib.sha256(data).hexdigest(),
                                        hashlib.md5(data).hexdigest())
    info = registry.DatasetInfo("mnist", "MNIST (test copy)", ("unused",), files,
                                registry.DATASETS["mnist"].classes, "test", "test")
    monkeypatch.setitem(registry.DATASETS, "mnist", info)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("MINAE_DATA", raising=False)
    monkeypatch.setattr(loading, "SYSTEM_ROOTS", ())
    return {name: (folder / name).read_bytes() for name in registry.FILENAMES.values()}


@pytest.fixture
def server(synthetic):
    """Mirrors: /good/, /missing/ (404), /stall/ (sleeps), /wrong/ (bad bytes)."""
    hits = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            kind, _, name = self.path.strip("/").partition("/")
            if kind == "stall":
                time.sleep(STALL_SECONDS)
            if kind == "missing" or name not in synthetic:
                self.send_error(404)
                return
            body = synthetic[name] if kind != "wrong" else synthetic[name][::-1]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield {"url": lambda kind: f"{base}/{kind}/", "hits": hits}
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def test_download_verifies_and_places_all_four_files(server, tmp_path, synthetic):
    folder = download("mnist", tmp_path / "dl", mirrors=[server["url"]("good")], timeout=5)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == synthetic
    assert len(server["hits"]) == 4
    download("mnist", folder, mirrors=[server["url"]("good")], timeout=5)   # all verified: no fetch
    assert len(server["hits"]) == 4


def test_404_on_the_first_mirror_tries_the_next(server, tmp_path):
    download("mnist", tmp_path / "dl", mirrors=[server["url"]("missing"), server["url"]("good")], timeout=5)
    assert sum(h.startswith("/missing/") for h in server["hits"]) == 4


def test_a_stalling_mirror_times_out_and_the_next_is_tried(server, tmp_path):
    start = time.monotonic()
    download("mnist", tmp_path / "dl", mirrors=[server["url"]("stall"), server["url"]("good")], timeout=0.3)
    assert time.monotonic() - start < 4 * STALL_SECONDS   # never waited out a full stall per file twice
    assert sum(h.startswith("/good/") for h in server["hits"]) == 4


def test_a_checksum_mismatch_is_not_kept(server, tmp_path):
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download("mnist", tmp_path / "dl", mirrors=[server["url"]("wrong")], timeout=5)
    assert not [p for p in (tmp_path / "dl").iterdir()]   # neither the file nor a partial one


def test_every_mirror_failing_lists_what_was_tried_and_the_offline_options(server, tmp_path):
    mirrors = [server["url"]("missing"), server["url"]("wrong")]
    with pytest.raises(DownloadError) as err:
        download("mnist", tmp_path / "dl", mirrors=mirrors, timeout=5)
    text = str(err.value)
    assert "missing/train-images-idx3-ubyte.gz: HTTPError" in text
    assert "wrong/train-images-idx3-ubyte.gz" in text and "checksum mismatch" in text
    assert "--data-dir" in text and "MINAE_DATA" in text


def test_an_unwritable_cache_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(DataError, match="cannot write to the data cache .*XDG_CACHE_HOME"):
        download("mnist", blocker / "minae" / "mnist", mirrors=["http://127.0.0.1:9/"], timeout=1)


def test_load_downloads_into_the_cache_then_reuses_it(server, synthetic):
    ds = load("mnist", mirrors=[server["url"]("good")], timeout=5)
    assert ds.source == "download" and ds.canonical and ds.x_train.shape == (20, 784)
    again = load("mnist", mirrors=[server["url"]("good")], timeout=5)
    assert again.source == "cache" and again.canonical and len(server["hits"]) == 4


def test_a_corrupted_cache_file_is_fetched_again(server, synthetic):
    load("mnist", mirrors=[server["url"]("good")], timeout=5)
    cached = loading.cache_root() / "mnist" / "t10k-images-idx3-ubyte.gz"
    cached.write_bytes(cached.read_bytes()[:50])   # truncated on disk
    with pytest.warns(UserWarning, match="deleted a broken cached copy"):
        ds = load("mnist", mirrors=[server["url"]("good")], timeout=5)
    assert ds.source == "download" and cached.read_bytes() == synthetic[cached.name]


def test_offline_load_falls_back_to_the_sample_after_trying_every_mirror(server):
    with pytest.warns(loading.SampleDataWarning, match=r"missing/.*HTTPError"):
        ds = load("mnist", mirrors=[server["url"]("missing")], timeout=5)
    assert ds.source == "bundled-sample"


def test_network_errors_include_refused_connections(tmp_path, synthetic):
    with pytest.raises(DownloadError, match="Connection refused"):
        download("mnist", tmp_path / "dl", mirrors=["http://127.0.0.1:9/"], timeout=1)


def test_a_named_folder_never_downloads(server, tmp_path):
    (tmp_path / "mine").mkdir()
    with pytest.raises(DataError, match=r"which holds no mnist files.*no cache, system copy or download"):
        load("mnist", tmp_path / "mine", mirrors=[server["url"]("good")], timeout=5)
    assert server["hits"] == []


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), "5"])
def test_a_bad_timeout_is_refused_before_any_request(server, tmp_path, timeout):
    with pytest.raises(ValueError, match="timeout must be a"):
        download("mnist", tmp_path / "dl", mirrors=[server["url"]("good")], timeout=timeout)
    assert server["hits"] == []


# Hides pooch from the import system, as on a machine where it is not installed.
WITHOUT_POOCH = """
import importlib.abc, sys
class NoPooch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "pooch":
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, NoPooch())
for name in [m for m in sys.modules if m.split(".")[0] == "pooch"]:
    del sys.modules[name]
import minae.data
assert "pooch" not in sys.modules
from minae.errors import DownloadError
try:
    minae.data.download("mnist", sys.argv[1], mirrors=["http://127.0.0.1:9/"], timeout=1)
except DownloadError as exc:
    print(exc)
"""


def test_minae_data_imports_without_pooch_and_a_download_says_how_to_get_it(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(Path(minae.__file__).parents[1]))
    done = subprocess.run([sys.executable, "-c", WITHOUT_POOCH, str(tmp_path / "dl")], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "downloading a dataset needs pooch, which is not installed here: pip install pooch" in done.stdout
    assert "--data-dir" in done.stdout


@pytest.mark.parametrize("mirror", ["ftp://127.0.0.1:9/", "not a url/", "http://[::1/"])
def test_a_mirror_url_that_cannot_work_is_not_called_a_checksum_mismatch(tmp_path, synthetic, mirror):
    with pytest.raises(DownloadError) as err:
        download("mnist", tmp_path / "dl", mirrors=[mirror], timeout=1)
    why = r"(InvalidSchema|MissingSchema|InvalidURL)"
    assert re.search(rf"{re.escape(mirror)}train-images-idx3-ubyte.gz: {why}", str(err.value))
    assert "checksum" not in str(err.value)


def test_a_full_disk_during_a_download_names_the_file_and_tries_no_other_mirror(server, tmp_path,
                                                                              monkeypatch):
    import pooch

    def disk_full(url, *args, **kwargs):
        server["hits"].append(url)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pooch, "retrieve", disk_full)
    with pytest.raises(OSError) as err:
        download("mnist", tmp_path / "dl", mirrors=[server["url"]("good"), server["url"]("good")], timeout=5)
    assert err.value.errno == errno.ENOSPC and len(server["hits"]) == 1
    assert f"cannot write {tmp_path / 'dl' / 'train-images-idx3-ubyte.gz'}: No space left" in str(err.value)
