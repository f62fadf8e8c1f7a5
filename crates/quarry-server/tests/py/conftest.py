"""Starts `quarry serve` (the binary named by $QUARRY_BIN) on a free loopback port for the tests."""

import os
import re
import shutil
import subprocess
import tempfile

import pytest

API_KEY = "test-full-key-0001"
READ_KEY = "test-read-key-0002"


@pytest.fixture(scope="session")
def server():
    binary = os.environ.get("QUARRY_BIN")
    if not binary or not os.path.exists(binary):
        if os.environ.get("QUARRY_REQUIRE_DATA", "0") not in ("", "0"):
            pytest.fail("QUARRY_REQUIRE_DATA=1 but the quarry binary is missing: set QUARRY_BIN")
        pytest.skip("set QUARRY_BIN to the quarry binary")
    data = tempfile.mkdtemp(prefix="quarry-pytest-")
    proc = subprocess.Popen(
        [binary, "serve", "--data", data, "--port", "0", "--api-key", API_KEY, "--read-only-key", READ_KEY],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = proc.stdout.readline()
    m = re.search(r"http://([\d.]+):(\d+)", line)
    assert m, f"no address in {line!r}"
    yield {"host": m.group(1), "port": int(m.group(2)), "url": f"http://{m.group(1)}:{m.group(2)}"}
    proc.terminate()
    assert proc.wait(timeout=30) == 0, "graceful shutdown exits 0"
    shutil.rmtree(data, ignore_errors=True)
