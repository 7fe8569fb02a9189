"""The web page in a real browser (headless Chromium) against an engine on the JACK dummy server."""

from __future__ import annotations

import http.server
import json
import os
import signal as signal_module
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.browser import chromium, wait_for
from PIL import Image
from pythonosc.udp_client import SimpleUDPClient
from scipy import signal
from selenium import webdriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select
from test_encode import write_ir
from test_osc_live import _noise
from test_web import _handshake
from websockets.sync.client import connect as websocket_connect

import aether_rt
from aether_rt.control import ControlState, StateBox
from aether_rt.data.datasets import default_cache_dir
from aether_rt.engine import Engine, EngineSettings
from aether_rt.models.fit import read_library
from aether_rt.modulation import Modulation
from aether_rt.osc import OscServer
from aether_rt.preset import PresetShelf
from aether_rt.web import protocol
from aether_rt.web.library import start_library
from aether_rt.web.pictures import Pictures, draw_all
from aether_rt.web.server import SEND_TIMEOUT_S, WebServer

FS = 48_000
pytestmark = pytest.mark.audio
#: Screenshots land here (CI keeps them as artefacts): $AETHER_ARTIFACTS, else test-artifacts/.
ARTIFACTS = Path(os.environ.get("AETHER_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts"))


@pytest.fixture(scope="module")
def model():
    return aether_rt.load_model()


class LivePage:
    """An engine playing noise on JACK, with OSC and the web server wired as `run --web` wires them."""

    def __init__(self, model, folder: Path) -> None:
        start = ControlState(modulation=Modulation.for_latent_dim(model.config.latent_dim, mode="static"))
        self.engine = Engine(EngineSettings(sample_rate_hz=FS, blocksize=64), model, StateBox(start),
                             source=_noise(8.0), loop=True)  # fmt: skip
        self.shelf = PresetShelf([folder], model)
        self.osc = OscServer(self.engine.box, self.engine.clock, port=0, recall_preset=self.shelf.recall,
                             preset_name=lambda: self.shelf.current)  # fmt: skip
        self.web = WebServer(
            self.engine.box, self.engine.clock, sample_rate_hz=FS, coeffs=self.engine.bank.coeffs_in_use,
            meters=self.engine.meters, presets=self.shelf, images=draw_all(model, FS), port=0,
        )  # fmt: skip
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.engine.start()
        try:
            while not self.stop.wait(0.1):
                self.engine.watchdog()
        finally:
            self.engine.stop()

    def __enter__(self) -> LivePage:
        self.osc.start()
        self.web.start()
        self.thread.start()
        wait_for(lambda: self.engine.clock() > 0.3, "audio")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)
        self.web.stop()
        self.osc.stop()


@pytest.fixture(scope="module")
def live(model, jack_server: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePage]:
    with LivePage(model, tmp_path_factory.mktemp("presets")) as page:
        yield page


@pytest.fixture(scope="module")
def browser(live: LivePage) -> Iterator[webdriver.Chrome]:
    driver = chromium()
    try:
        driver.get(live.web.url)
        wait_for(lambda: driver.execute_script("return window.aether && window.aether.stats.frames > 5"),
                 "the page's first frames", timeout=15)  # fmt: skip
        yield driver
    finally:
        driver.quit()


def page_frame(driver: webdriver.Chrome) -> dict[str, Any]:
    return driver.execute_script("return window.aether.frame")


def test_the_page_draws_the_running_tables_response_at_20_fps_or_more(live: LivePage, browser) -> None:
    time.sleep(2.2)  # two full seconds of the page's own count
    stats = browser.execute_script("return window.aether.stats")
    assert stats["connected"] and stats["fps"] >= 20, stats
    # What the page plots is the response of the table the audio is running, through scipy.
    frame = page_frame(browser)
    table = live.engine.bank.coeffs_in_use()  # static z: the table does not move
    sos = np.concatenate([table[:, :3], np.ones((table.shape[0], 1)), table[:, 3:]], axis=1)
    _, h = signal.sosfreqz(sos, worN=protocol.plot_freqs_hz(FS), fs=FS)
    np.testing.assert_allclose(np.array(frame["response"]) * protocol.DB_STEP, 20 * np.log10(np.abs(h)), atol=0.06)
    assert len(frame["filters"]) == 32
    sliders = browser.find_elements(By.CSS_SELECTOR, "input.z-slider")
    assert [s.get_attribute("min") for s in sliders] == ["-3"] * 4 and len(sliders) == 4
    assert browser.find_element(By.ID, "xruns").text.isdigit()
    assert browser.find_element(By.ID, "meter-in-out").text.endswith("dBFS")  # the noise source's level


def test_moving_a_slider_changes_the_engine_and_the_plotted_curve(live: LivePage, browser) -> None:
    box = live.engine.box
    before = np.array(page_frame(browser)["response"])
    canvas_before = browser.execute_script("return document.getElementById('response').toDataURL()")
    slider = browser.find_element(By.ID, "z1")
    slider.click()  # a real click and real keys: the browser fires the input events
    slider.send_keys(Keys.END)
    wait_for(lambda: box.state.modulation.center[1] == 3.0, "z1 = 3 in the engine")
    assert box.state.modulation.mode == "manual"
    wait_for(lambda: np.abs(live.engine.controller.last_z[1] - 3.0) < 1e-9, "the control thread at z1 = 3")

    def curve_moved() -> bool:
        now = np.array(page_frame(browser)["response"])
        return np.max(np.abs(now - before)) * protocol.DB_STEP > 3.0

    wait_for(curve_moved, "the plotted response to change by > 3 dB")
    time.sleep(0.2)
    assert browser.execute_script("return document.getElementById('response').toDataURL()") != canvas_before
    assert browser.find_element(By.ID, "z1-out").text == "+3.00"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "web-page.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 50_000


@pytest.mark.parametrize("size", [2, 8])
def test_a_model_of_another_size_gets_a_slider_per_dim_and_a_plane_per_pair(
    size: int, models_by_latent_size: dict[int, str], jack_server: None, tmp_path: Path
) -> None:
    other = aether_rt.load_model(models_by_latent_size[size])
    with LivePage(other, tmp_path) as page:
        driver = chromium()
        try:
            driver.get(page.web.url)
            wait_for(lambda: driver.execute_script("return window.aether && window.aether.stats.frames > 5"),
                     "the page's first frames", timeout=15)  # fmt: skip
            sliders = driver.find_elements(By.CSS_SELECTOR, "input.z-slider")
            assert [s.get_attribute("id") for s in sliders] == [f"z{i}" for i in range(size)]
            planes = driver.find_elements(By.CSS_SELECTOR, "#planes canvas")
            assert [c.get_attribute("id") for c in planes] == [f"plane-{a}-{a + 1}" for a in range(0, size, 2)]
            last = driver.find_element(By.ID, f"z{size - 1}")
            last.click()
            last.send_keys(Keys.HOME)
            box = page.engine.box
            wait_for(lambda: box.state.modulation.center[size - 1] == -3.0, f"z{size - 1} = -3 in the engine")
            wait_for(lambda: page.engine.controller.last_z[size - 1] == -3.0, "the control thread there")
            assert len(page_frame(driver)["filters"]) == other.config.num_filters
            for preset in ("tremor", "swapped"):  # the picker loads a shipped preset for this size
                Select(driver.find_element(By.ID, "preset-list")).select_by_value(preset)
                driver.find_element(By.ID, "preset-load").click()
                wait_for(lambda p=preset: page.shelf.current == p, f"{preset} loaded")
                assert box.state.modulation.latent_dim == size
            assert not [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        finally:
            driver.quit()


def test_an_osc_change_moves_the_slider(live: LivePage, browser) -> None:
    client = SimpleUDPClient("127.0.0.1", live.osc.port)
    client.send_message("/aether/mix", 0.25)
    mix = browser.find_element(By.ID, "mix")
    wait_for(lambda: mix.get_attribute("value") == "0.25", "the mix slider at 0.25")
    assert browser.find_element(By.ID, "mix-out").text == "25 %"
    client.send_message("/aether/bypass", 1)
    wait_for(lambda: browser.find_element(By.ID, "bypass").is_selected(), "the bypass box ticked")
    client.send_message("/aether/bypass", 0)
    wait_for(lambda: not browser.find_element(By.ID, "bypass").is_selected(), "the bypass box cleared")


def test_the_page_builds_a_control_for_each_registry_number_it_lacks(live: LivePage, browser) -> None:
    """The page lays out from the registry in its hello: the envelope's and the sweep's
    sliders come from aether_rt/params.py, with its ranges, and drive the engine."""
    from aether_rt.params import NUMBERS

    # The ranges the page was given (the z bound of the state when it connected).
    bound = browser.execute_script("return window.aether.hello.registry.z_bound")
    expected = {
        "envelope/amount": (-2 * bound, 2 * bound),
        "sweep": (-bound, bound),
        **{name: NUMBERS[name].limits for name in ("envelope/attack", "envelope/release", "envelope/floor")},
    }
    for name, (lo, hi) in expected.items():
        el = browser.find_element(By.ID, "param-" + name.replace("/", "-"))
        assert (float(el.get_attribute("min")), float(el.get_attribute("max"))) == (lo, hi), name
    # The registry's tempo range reaches the page's own tempo slider too.
    tempo = browser.find_element(By.ID, "tempo")
    assert (float(tempo.get_attribute("min")), float(tempo.get_attribute("max"))) == NUMBERS["tempo"].limits
    slider = browser.find_element(By.ID, "param-envelope-amount")
    slider.click()
    slider.send_keys(Keys.END)
    box, top = live.engine.box, float(slider.get_attribute("max"))
    wait_for(lambda: box.state.modulation.envelope is not None and box.state.modulation.envelope[0] == top,
             "the envelope amount at its top in the engine")  # fmt: skip
    box.update(modulation={"envelope": None})


def test_a_bad_value_from_the_page_is_answered_and_changes_nothing(live: LivePage, browser) -> None:
    version = live.engine.box.version
    browser.execute_script(
        "window.aether.ws.send(JSON.stringify({type: 'set', id: 99999, param: 'mix', value: 7}))"
    )  # what a broken or hostile page could send
    wait_for(lambda: browser.find_element(By.ID, "message").text == "mix: 7 is outside [0, 1]", "the error shown")
    assert live.engine.box.version == version


def test_a_page_from_another_origin_cannot_connect(live: LivePage, browser, tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text(
        f"<script>const ws = new WebSocket('ws://127.0.0.1:{live.web.port}/ws');"
        "window.result = 'pending'; ws.onopen = () => window.result = 'open';"
        "ws.onerror = () => window.result = 'refused';</script>"
    )
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path), **k)  # noqa: E731
    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    refused = live.web.counters["refused"]
    pages = live.web.pages()
    try:
        browser.get(f"http://127.0.0.1:{other.server_address[1]}/index.html")
        result = "return window.result !== 'pending' && window.result"
        assert wait_for(lambda: browser.execute_script(result), "the foreign page's attempt") == "refused"
        assert live.web.counters["refused"] == refused + 1
        assert live.web.pages() == pages - 1  # our page left with the navigation; the foreign one never joined
    finally:
        other.shutdown()


def test_run_web_serves_the_page_and_a_taken_port_exits_2(jack_server: None, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, JACK_NO_START_SERVER="1")
    cmd = [sys.executable, "-m", "aether_rt", "run", "--input", "demo", "--loop", "--no-osc", "--duration", "60"]
    proc = subprocess.Popen([*cmd, "--web", str(port)], stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        line = wait_for(lambda: _line_with(proc, "web page at"), "the run's banner", timeout=120)
        assert f"http://127.0.0.1:{port}/" in line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as resp:
            assert resp.status == 200 and b"aether-rt" in resp.read()
        map_png = wait_for(lambda: _picture(port, "map"), "the map, drawn or cached", timeout=180)
        assert map_png.startswith(b"\x89PNG")
        taken = subprocess.run([*cmd, "--web", str(port)], capture_output=True, text=True, env=env, timeout=180)
        assert taken.returncode == 2 and "Traceback" not in taken.stderr
        assert f"cannot serve the web page on 127.0.0.1:{port}" in taken.stderr
    finally:
        proc.terminate()
        proc.wait(30)


def _picture(port: int, name: str) -> bytes | None:
    """A picture's bytes, or None while the server answers that it is being drawn (503)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/img/{name}.png") as resp:
            return resp.read()
    except urllib.error.HTTPError as exc:
        assert exc.code == 503 and exc.headers["Retry-After"], exc
        return None


def _audio_runs(port: int) -> bool:
    """Whether the page's socket gets a frame with the audio clock moving."""
    with websocket_connect(f"ws://127.0.0.1:{port}/ws", origin=f"http://127.0.0.1:{port}", open_timeout=5) as ws:
        for _ in range(100):
            msg = json.loads(ws.recv(timeout=5))
            if msg["type"] == "frame" and msg["t_s"] > 0:
                return True
    return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_run_web_caches_its_pictures_and_a_second_start_draws_none(jack_server: None, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    # Only the pictures start cold: JAX's compilations are shared with the usual cache.
    (cache / "jax").symlink_to(default_cache_dir() / "jax", target_is_directory=True)
    env = dict(os.environ, JACK_NO_START_SERVER="1", AETHER_RT_CACHE=str(cache))
    names = ["plane-0-1", "plane-2-3", "map", "sweep"]  # the shipped model has 4 latent dims

    def start() -> tuple[subprocess.Popen[str], int]:
        port = _free_port()
        cmd = [sys.executable, "-m", "aether_rt", "run", "--input", "demo", "--loop", "--no-osc", "--web", str(port)]
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)  # fmt: skip
        wait_for(lambda: _line_with(proc, "web page at"), "the run's banner", timeout=120)
        return proc, port

    def stop(proc: subprocess.Popen[str], port: int) -> None:
        wait_for(lambda: _audio_runs(port), "the audio running", timeout=60)  # (Ctrl-C before is not a clean stop)
        proc.send_signal(signal_module.SIGINT)  # Ctrl-C: a clean stop
        try:
            assert proc.wait(60) == 0
        finally:  # never leave a looping run behind
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    proc, port = start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as resp:
            assert resp.status == 200
        served = {n: wait_for(lambda n=n: _picture(port, n), f"the {n} picture", timeout=300) for n in names}
    finally:
        stop(proc, port)
    files = sorted((cache / "pictures").glob("*.png"))
    assert sorted(f.name.rsplit("-", 1)[0] for f in files) == sorted(names)
    by_name = {f.name.rsplit("-", 1)[0]: f for f in files}
    assert all(by_name[n].read_bytes() == served[n] for n in names)
    for f in files:
        with Image.open(f) as image:
            image.load()  # whole pictures, readable by Pillow
    before = {f: f.stat().st_mtime_ns for f in files}

    proc, port = start()
    try:
        for n in names:  # the very first request already has it: nothing is being drawn
            assert _picture(port, n) == served[n]
    finally:
        stop(proc, port)
    assert {f: f.stat().st_mtime_ns for f in sorted((cache / "pictures").glob("*.png"))} == before


def test_a_page_opened_while_the_effect_starts_connects_by_itself(live: LivePage, browser) -> None:
    web = WebServer(None, port=0)  # as `run --web` listens before the model loads
    web.start()
    try:
        browser.get(web.url)
        wait_for(lambda: "starting" in browser.find_element(By.ID, "link").text, "the page saying it is starting")
        assert not browser.execute_script("return window.aether.stats.connected")
        engine = live.engine
        web.attach(engine.box, engine.clock, sample_rate_hz=FS, coeffs=engine.bank.coeffs_in_use,
                   meters=engine.meters, images=live.web.pictures)  # fmt: skip
        wait_for(lambda: browser.execute_script("return window.aether.stats.frames > 3"), "frames", timeout=10)
        assert browser.find_element(By.ID, "link").text == "connected"
        assert browser.execute_script("return window.aether.hello.latent_dim") == 4
    finally:
        browser.get(live.web.url)
        wait_for(lambda: browser.execute_script("return window.aether.stats.frames > 3"), "back on the live page")
        web.stop()


def test_the_page_shows_placeholders_until_each_picture_is_ready(live: LivePage, browser) -> None:
    store = Pictures(live.web.pictures.names)  # nothing drawn yet
    engine = live.engine
    web = WebServer(engine.box, engine.clock, sample_rate_hz=FS, coeffs=engine.bank.coeffs_in_use,
                    meters=engine.meters, images=store, port=0)  # fmt: skip
    web.start()
    state = """const fig = document.getElementById("fig-map"), img = fig.querySelector("img");
               const plane = document.getElementById("plane-0-1");
               return {drawing: fig.classList.contains("drawing"), shown: img.naturalWidth > 0,
                       backdrop: Boolean(plane && plane.backdrop && plane.backdrop.complete
                                         && plane.backdrop.naturalWidth > 0)};"""
    try:
        browser.get(web.url)
        wait_for(lambda: browser.execute_script("return window.aether.stats.frames > 3"), "the page working")
        assert browser.execute_script(state) == {"drawing": True, "shown": False, "backdrop": False}
        placeholder = browser.execute_script(
            "return getComputedStyle(document.getElementById('fig-map'), '::before').content"
        )
        assert "drawing" in placeholder
        store.put("plane-0-1", live.web.pictures.get("plane-0-1"))
        wait_for(lambda: browser.execute_script(state)["backdrop"], "the plane's backdrop")
        assert browser.execute_script(state)["drawing"]  # the map is still being drawn
        store.put("map", live.web.pictures.get("map"))
        wait_for(lambda: browser.execute_script(state) == {"drawing": False, "shown": True, "backdrop": True},
                 "the map shown")  # fmt: skip
    finally:
        browser.get(live.web.url)
        wait_for(lambda: browser.execute_script("return window.aether.stats.frames > 3"), "back on the live page")
        web.stop()


def _line_with(proc: subprocess.Popen[str], text: str) -> str | None:
    assert proc.poll() is None, proc.stderr.read() if proc.stderr else "exited"
    line = proc.stderr.readline() if proc.stderr else ""
    return line if text in line else None


def test_saving_from_the_page_writes_a_preset(live: LivePage, browser, tmp_path: Path) -> None:
    browser.get(live.web.url)
    wait_for(lambda: browser.execute_script("return window.aether.stats.frames > 3"), "frames")
    name = browser.find_element(By.ID, "preset-name")
    name.send_keys("page-made")
    browser.find_element(By.ID, "preset-save").click()
    wait_for(lambda: (live.shelf.dirs[0] / "page-made.yaml").exists(), "the saved preset file")
    options = "return [...document.querySelectorAll('#preset-list option')].map((o) => o.value)"
    wait_for(lambda: "page-made" in browser.execute_script(options), "the new preset in the picker")
    assert live.shelf.names().count("page-made") == 1


def test_a_stalled_page_never_holds_up_the_control_thread_or_the_audio(live: LivePage, browser) -> None:
    # A page that opens the socket and then reads nothing: once its buffers are full, the
    # server's sends to it wait, until it is dropped. Meanwhile the healthy page's change
    # must reach the sound, and the audio and the control thread must not notice.
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", live.web.port))
    stalled.sendall(_handshake(f"127.0.0.1:{live.web.port}"))
    dropped, skipped = live.web.counters["slow_pages_dropped"], live.web.counters["frames_skipped"]
    try:
        # Frames skipped: the stalled page's mailbox is full, its sender is stuck in a send.
        wait_for(lambda: live.web.counters["frames_skipped"] >= skipped + 10, "the stalled page to back up")
        frames, updates = live.engine.meters()["frames"], live.engine.controller.updates
        started = time.monotonic()
        browser.execute_script("window.aether.ws.send(JSON.stringify({type: 'set', param: 'z/2', value: -2.5}))")
        wait_for(lambda: abs(live.engine.controller.last_z[2] + 2.5) < 1e-9, "the control thread at z2 = -2.5")
        assert live.web.counters["slow_pages_dropped"] == dropped  # it landed while the stalled page was held
        wait_for(lambda: live.web.counters["slow_pages_dropped"] == dropped + 1, "the stalled page dropped",
                 timeout=3 * SEND_TIMEOUT_S)  # fmt: skip
        elapsed = time.monotonic() - started
        # Through the whole stall the audio kept its clock and the control thread kept publishing.
        assert live.engine.meters()["frames"] - frames > 0.8 * FS * elapsed
        assert live.engine.controller.updates > updates
    finally:
        stalled.close()


def test_the_ir_library_shows_on_the_planes_and_a_click_goes_there(
    live: LivePage, browser, model, tmp_path: Path
) -> None:
    folder = tmp_path / "irs"
    folder.mkdir()
    write_ir(folder / "bright.wav", lowpass_hz=15_000, highpass_hz=40, peak_hz=5_000, peak=0.5)
    write_ir(folder / "cab.wav", lowpass_hz=4_500, highpass_hz=90, peak_hz=2_500, peak=2.0)
    (folder / "broken.wav").write_bytes(b"RIFF....not audio")
    box = live.engine.box
    frames, updates, started = live.engine.meters()["frames"], live.engine.controller.updates, time.monotonic()
    start_library(
        live.web, model, read_library(folder, model.config.feature), refine_steps=50
    )  # as `run --ir-library` does
    ready = "const l = window.aether.library; return l && l.status === 'ready' && l"
    library = wait_for(lambda: browser.execute_script(ready), "the encoded library on the page", timeout=120)
    # Encoding beside the engine: the audio kept its clock and the control thread kept publishing.
    elapsed = time.monotonic() - started
    assert live.engine.meters()["frames"] - frames > 0.8 * FS * elapsed and live.engine.controller.updates > updates
    buttons = browser.find_elements(By.CSS_SELECTOR, "#library-list button")
    assert [b.text.split()[0] for b in buttons] == ["bright.wav", "cab.wav"]
    assert "1 file(s) skipped" in browser.find_element(By.CSS_SELECTOR, "#library-skipped summary").text

    # A real click on an IR's point on the (z0, z1) plane puts z there (the sliders' target is z).
    browser.find_element(By.CSS_SELECTOR, "input[name=ztarget][value=z]").click()
    canvas = browser.find_element(By.ID, "plane-0-1")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
    z = library["irs"][0]["z"]
    width, height = canvas.size["width"], canvas.size["height"]
    dx, dy = ((z[0] + 3) / 6 - 0.5) * width, (0.5 - (z[1] + 3) / 6) * height  # from the canvas's centre
    ActionChains(browser).move_to_element_with_offset(canvas, round(dx), round(dy)).click().perform()
    picked = wait_for(lambda: browser.execute_script("return window.aether.picked >= 0 && window.aether.picked + 1"),
                      "a library point picked") - 1  # fmt: skip
    want = library["irs"][picked]["z"]
    wait_for(lambda: np.allclose(box.state.modulation.center, want), "the engine at the IR's point")
    assert box.state.modulation.mode == "manual"
    wait_for(lambda: np.allclose(live.engine.controller.last_z, want, atol=1e-6), "the control thread there")

    # With the sliders moving the centre, the list's button moves the motion's centre instead.
    Select(browser.find_element(By.ID, "mode")).select_by_value("spiral")
    wait_for(lambda: box.state.modulation.mode == "spiral", "the spiral running")
    browser.find_element(By.CSS_SELECTOR, "input[name=ztarget][value=center]").click()
    buttons[1 - picked].click()
    other = library["irs"][1 - picked]["z"]
    wait_for(lambda: np.allclose(box.state.modulation.center, other), "the centre at the other IR")
    assert box.state.modulation.mode == "spiral"
    assert "the centre at" in browser.find_element(By.ID, "message").text
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "web-page-library.png"))


def test_a_crowded_library_names_what_fits_and_always_the_picked_ir(
    live: LivePage, browser, model, tmp_path: Path
) -> None:
    """Eight copies of one cabinet sit on one point: one name is drawn there, not eight on top
    of each other; the IR picked from the list is the one named; a distinct IR keeps its name."""
    folder = tmp_path / "crowd"
    folder.mkdir()
    for k in range(8):
        write_ir(folder / f"cab{k}.wav", lowpass_hz=4_500, highpass_hz=90, peak_hz=2_500, peak=2.0)
    write_ir(folder / "room.wav", lowpass_hz=15_000, highpass_hz=40, peak_hz=300, peak=0.5)
    start_library(live.web, model, read_library(folder, model.config.feature), refine_steps=0)
    ready = "const l = window.aether.library; return l && l.status === 'ready' && l.irs.length === 9 && l"
    library = wait_for(lambda: browser.execute_script(ready), "the crowded library on the page", timeout=120)
    names = [ir["name"] for ir in library["irs"]]
    cabs = [i for i, n in enumerate(names) if n.startswith("cab")]
    room = names.index("room.wav")
    assert all(np.allclose(library["irs"][i]["z"], library["irs"][cabs[0]]["z"]) for i in cabs)
    assert not np.allclose(library["irs"][room]["z"], library["irs"][cabs[0]]["z"], atol=0.3)
    labels = "return window.aether.stats.labels['0,1']"
    shown = wait_for(lambda: browser.execute_script(labels), "the plane drawn with the library")
    assert len([i for i in shown if i in cabs]) == 1 and room in shown
    buttons = browser.find_elements(By.CSS_SELECTOR, "#library-list button")
    buttons[cabs[5]].click()
    wait_for(lambda: browser.execute_script("return window.aether.picked") == cabs[5], "the sixth copy picked")
    shown = wait_for(lambda: (s := browser.execute_script(labels)) and cabs[5] in s and s, "the picked IR named")
    assert len([i for i in shown if i in cabs]) == 1 and room in shown
    # The pointer on the crowd names the copy under it too; off the plane, that name goes.
    canvas = browser.find_element(By.ID, "plane-0-1")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
    z = library["irs"][cabs[0]]["z"]
    width, height = canvas.size["width"], canvas.size["height"]
    dx, dy = ((z[0] + 3) / 6 - 0.5) * width, (0.5 - (z[1] + 3) / 6) * height  # from the canvas's centre
    ActionChains(browser).move_to_element_with_offset(canvas, round(dx), round(dy)).perform()
    hovered = wait_for(lambda: (h := browser.execute_script("return window.aether.hovered")) in cabs and h + 1,
                       "a copy under the pointer") - 1  # fmt: skip
    wait_for(lambda: {cabs[5], hovered, room} <= set(browser.execute_script(labels)), "the hovered copy named")
    ActionChains(browser).move_to_element(buttons[room]).perform()
    wait_for(lambda: browser.execute_script("return window.aether.hovered") == -1, "nothing under the pointer")


def test_the_page_offers_midi_learn_only_with_midi(live: LivePage, browser) -> None:
    """Without --midi the page has no learn buttons (the fixture's page runs without MIDI)."""
    assert browser.find_elements(By.CSS_SELECTOR, "button.learn") == []


def test_a_learn_button_binds_the_next_midi_control_and_saves_the_map(model, jack_server: None,
                                                                      tmp_path: Path) -> None:  # fmt: skip
    """As a player does it: click the MIDI button beside "mix" in the page, move a control
    on a MIDI controller (a JACK MIDI sender), and that control now drives mix, on the
    engine and on the page's slider; the map is saved."""
    from helpers.jack_midi import RemoteSender
    from test_midi_live import _send_until

    from aether_rt.midi.input import MidiInput
    from aether_rt.midi.mapping import DEFAULT_MAP, load_map
    from aether_rt.midi.ports import MidiPort

    map_path = tmp_path / "midi-map.yaml"
    with LivePage(model, tmp_path) as page:
        midi = MidiInput(page.engine.box, page.engine.clock, MidiPort(None), midi_map=DEFAULT_MAP,
                         map_path=map_path, stamp=page.engine.clock_stamp)  # fmt: skip
        midi.start()
        page.web.midi_learn = midi.learn  # as `run --web --midi` wires it, before any page connects
        sender, driver = RemoteSender(), chromium()
        try:
            sender.connect_to("aether-rt:midi in")
            driver.get(page.web.url)
            wait_for(lambda: driver.execute_script("return window.aether && window.aether.stats.frames > 5"),
                     "the page's first frames", timeout=15)  # fmt: skip
            learnable = {b.get_attribute("data-learn") for b in driver.find_elements(By.CSS_SELECTOR, "button.learn")}
            expected = {"mix", "depth", "tempo", "gain/in", "gain/out", "bypass", "sweep", "envelope/amount"}
            assert expected <= learnable, learnable
            button = driver.find_element(By.CSS_SELECTOR, 'button.learn[data-learn="mix"]')
            driver.execute_script("arguments[0].scrollIntoView()", button)
            button.click()
            wait_for(lambda: midi.learning == "mix", "the engine to wait for a control for mix")
            # CC 30 on channel 3 is in no default binding: learned, it sets mix to 32/127.
            assert _send_until(sender, lambda: page.engine.box.state.mix == pytest.approx(32 / 127, abs=1e-6),
                               [0xB2, 30, 32])  # fmt: skip
            assert midi.learning is None
            wait_for(lambda: float(driver.find_element(By.ID, "mix").get_attribute("value")) == pytest.approx(0.25),
                     "the page's mix slider to follow the learned control")  # fmt: skip
            learned = [b for b in load_map(map_path).bindings if b.param == "mix"]
            assert (learned[0].control, learned[0].channel) == (30, 2)  # first: it wins over the default CC 7
        finally:
            driver.quit()
            sender.close()
            midi.stop()
