"""`make serve-api` as a user runs it in a terminal: it comes up, and Ctrl-C stops it cleanly."""

from __future__ import annotations

import pytest

from tests.e2e.terminal import start_in_terminal

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("local_cloud")]

START_TIMEOUT_SECONDS = 180  # synth and deploy: about 20 s on 2 cores
STOP_TIMEOUT_SECONDS = 60


def test_ctrl_c_stops_serve_api_with_a_clean_exit():
    # Given serve-api in a terminal, synthesizing its own stack as `make serve-api` does, up and serving
    server = start_in_terminal("-m", "saga_testkit.serve_api", "--port", "0")
    try:
        up = server.read_until("Ctrl-C stops it", START_TIMEOUT_SECONDS)
        assert up, f"serve-api did not come up; it showed:\n{server.output[-3000:]}"
        # When the user presses Ctrl-C (the terminal sends SIGINT to the whole foreground process group)
        server.press_ctrl_c()
        exit_code = server.wait(STOP_TIMEOUT_SECONDS)
    finally:
        if server.exit_code is None:
            server.kill()
    # Then it stops, says so, and exits 0 with no traceback (jsii's Node process no longer lives in it)
    shown = server.output
    assert exit_code == 0, shown[-3000:]
    assert "stopping" in shown
    assert "Traceback" not in shown, shown[-3000:]
    assert "Exception ignored" not in shown, shown[-3000:]
