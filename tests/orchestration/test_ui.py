"""The Dagster UI, for real: dagster-webserver as a subprocess, driven by headless Debian Chromium.

Checks, data-driven from ``synth_orchestration.definitions.defs`` (so a graph added later is covered):
every asset key is listed in the catalog, every asset appears in the global lineage, and one asset's
page shows its definition (description, upstream assets, job, sensor, checks). The whole flat graph
of ``own_pool_flat`` (a pool of its own: no generator to train) is materialised first, so that
``flat/source_data``'s page shows the metadata its materialisation recorded, ``flat/refined_output``
shows its three checks evaluated, each graph's lineage shows its edges, and the published
``report.html`` (the quality report) opens in the browser with its sections and pictures and no
console error; so does the report of a run the gate refuses (a second run, apart from the
webserver's instance), headed "Not published" with its reasons. Screenshots go to ``.synth/test-artifacts/ui-*.png``.

Needs /usr/bin/chromium and /usr/bin/chromedriver (Debian packages ``chromium`` and
``chromium-driver``; .ci/run installs them) and the ``selenium`` package: without them the test
fails under CI=true and is skipped locally.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / ".synth" / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
STARTUP_TIMEOUT_S = 120
PAGE_TIMEOUT_S = 60
SHOWCASE = "flat/source_data"  # the asset materialised for the metadata check (cheap)
DETAIL = "flat/refined_output"  # the asset whose definition page is checked
PARTITION = "own_pool_flat"  # a pool of its own: the whole graph without training a generator
CHECKS = ("accuracy_floor", "integrity", "privacy_gate")
REPORT_SECTIONS = ("Headline", "Accuracy by stage", "Every column (worst first)", "Worst pairs and associations",
                   "Privacy")
LOCATION = "synth_orchestration.definitions"  # workspace.yaml's python_module

pytestmark = pytest.mark.timeout(600) if importlib.util.find_spec("pytest_timeout") else []


def _require_browser() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if importlib.util.find_spec("selenium") is None:
        missing.append("python package selenium")
    if missing:
        message = (f"UI test needs {', '.join(missing)} "
                   "(apt-get install -y chromium chromium-driver; pip install selenium)")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _materialise_showcase(home: Path, state: Path) -> dict[str, str]:
    """Materialise the flat graph of PARTITION into the webserver's instance; source_data's metadata, as
    text, plus the published quality report's path under ``"_report_html"``."""
    from synth_orchestration.assets import flat
    from synth_orchestration.resources import ArtifactStore, MetricStoreResource

    instance = dg.DagsterInstance.from_config(str(home))
    try:
        result = dg.materialize(
            flat.ASSETS, partition_key=PARTITION, instance=instance,
            resources={"artifacts": ArtifactStore(artifact_root=str(state / "artifacts")),
                       "metrics": MetricStoreResource(database=str(state / "metrics.duckdb"))},
        )
        assert result.success
        assert {e.check_name: e.passed for e in result.get_asset_check_evaluations()} == dict.fromkeys(CHECKS, True)
        [event] = [e for e in result.get_asset_materialization_events()
                   if e.materialization.asset_key == dg.AssetKey(SHOWCASE.split("/"))]
        metadata = {k: v.text if isinstance(v, dg.TextMetadataValue) else str(getattr(v, "value", v))
                    for k, v in event.materialization.metadata.items()}
        return {**metadata, "_report_html": result.output_for_node("flat__quality_report")["published"]["report"]}
    finally:
        instance.dispose()


@pytest.fixture(scope="module")
def webserver(tmp_path_factory):
    _require_browser()
    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")
    metadata = _materialise_showcase(home, tmp_path_factory.mktemp("ui_state"))
    port = _free_port()
    exe = Path(sys.executable).parent / "dagster-webserver"
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "dagster_webserver"]
    command += ["-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]
    env = {**os.environ, "DAGSTER_HOME": str(home),
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)}
    log = open(home / "webserver.log", "w")
    proc = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # own process group: the code server goes with it
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _answers(f"{url}/server_info"):
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"dagster-webserver did not answer on {url}:\n"
                            f"{(home / 'webserver.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url, metadata
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def browser(webserver):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1600,1400"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, for the report's check
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)  # no driver download
    driver.set_page_load_timeout(PAGE_TIMEOUT_S)
    try:
        yield driver
    finally:
        driver.quit()


def _body(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


def _wait_for(driver, condition, what: str):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, PAGE_TIMEOUT_S, poll_frequency=0.5).until(lambda d: condition(d))
    except TimeoutException:
        _screenshot(driver, "failure")
        pytest.fail(f"UI: {what} not shown within {PAGE_TIMEOUT_S} s on {driver.current_url}:\n{_body(driver)[:2000]}")


def _screenshot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"ui-{name}.png"
    driver.save_screenshot(str(path))
    return path


def _definitions():
    from synth_orchestration.definitions import defs

    return defs


def _asset_keys() -> list[dg.AssetKey]:
    return sorted(_definitions().resolve_all_asset_keys(), key=lambda k: k.to_user_string())


def _asset_link(url: str, key: dg.AssetKey) -> str:
    return f"{url}/assets/{'/'.join(key.path)}"


def test_catalog_lists_every_asset_of_the_graphs(webserver, browser):
    from selenium.webdriver.common.by import By

    url, _ = webserver
    keys = _asset_keys()
    from synth_orchestration.assets import flat, sequential

    for kind, module in (("flat", flat), ("sequential", sequential)):
        assert {k.to_user_string() for k in keys} >= {f"{kind}/{a.key.path[-1]}" for a in module.ASSETS}
    browser.set_window_size(1600, 300 + 80 * len(keys))  # every row rendered, none virtualised away
    browser.get(f"{url}/assets")

    def links(driver) -> set[str]:
        return {a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR, "a[href*='/assets/']")}

    expected = {_asset_link(url, k) for k in keys}
    _wait_for(browser, lambda d: expected <= links(d), f"catalog links to {sorted(expected - links(browser))}")
    text = _body(browser)
    for key in keys:
        assert " / ".join(key.path) in text
    assert _screenshot(browser, "catalog").stat().st_size > 10_000


@pytest.mark.parametrize("group", ["flat", "sequential"])
def test_lineage_shows_every_asset(webserver, browser, group):
    """Each graph's lineage page (the global page folds the two groups into one box each)."""
    url, _ = webserver
    names = {k.path[-1] for k in _asset_keys() if k.path[0] == group}
    browser.set_window_size(1600, 1400)
    browser.get(f"{url}/locations/{LOCATION}/asset-groups/{group}/lineage")
    _wait_for(browser, lambda d: names <= set(_body(d).split()), f"{group} lineage nodes {sorted(names)}")
    graph = _definitions().resolve_asset_graph()
    edges = sum(len(graph.get(k).parent_keys) for k in _asset_keys() if k.path[0] == group)
    _wait_for(browser, lambda d: _edge_count(d) >= edges, f"{group} lineage edges ({edges})")
    assert _screenshot(browser, f"lineage-{group}").stat().st_size > 10_000


def _edge_count(driver) -> int:
    """Edges drawn in the lineage graph: the paths directly in the graph's SVG container (one per
    edge; the arrow-head marker and the icons live elsewhere)."""
    return int(driver.execute_script(
        "return document.querySelectorAll('svg[class*=\"svgContainer\"] > path').length;"))


def test_asset_page_shows_the_definition_and_checks(webserver, browser):
    url, _ = webserver
    defs = _definitions()
    key = dg.AssetKey(DETAIL.split("/"))
    asset = defs.resolve_assets_def(key)
    description = asset.descriptions_by_key[key]
    graph = defs.resolve_asset_graph()
    upstream = sorted(k.to_user_string().replace("/", " / ") for k in graph.get(key).parent_keys)
    downstream = sorted(k.to_user_string().replace("/", " / ") for k in graph.get(key).child_keys)
    sensors = [s.name for s in defs.sensors or [] if s.job_name == "flat_pipeline"]

    browser.get(_asset_link(url, key))
    _wait_for(browser, lambda d: description.split("\n")[0][:60] in _body(d), "the asset's description")
    _wait_for(browser, lambda d: all(u in _body(d) for u in upstream + downstream), "upstream/downstream assets")
    text = _body(browser)
    assert "flat_pipeline" in text
    for name in sensors:
        assert name in text
    _screenshot(browser, "asset")

    browser.get(_asset_link(url, key) + "?view=checks")
    check_names = sorted(k.name for k in asset.check_keys)
    assert check_names == list(CHECKS)
    _wait_for(browser, lambda d: all(c in _body(d) for c in check_names), f"checks {check_names}")
    # materialised with its checks: each one evaluated ("Succeeded" in the list), none "Not evaluated"
    _wait_for(browser,
              lambda d: _body(d).count("Succeeded") >= len(check_names) and "not evaluated" not in _body(d).lower(),
              "the three checks evaluated")
    assert "Passed" in _body(browser)  # the selected check's latest evaluation
    _screenshot(browser, "asset-checks")


def test_materialised_asset_shows_its_metadata(webserver, browser):
    url, metadata = webserver
    key = dg.AssetKey(SHOWCASE.split("/"))
    browser.get(_asset_link(url, key))
    labels = ["training_rows", "holdout_rows", "rows", "target_size", "holdout_from_file"]
    assert set(labels) <= set(metadata)
    _wait_for(browser, lambda d: all(label in _body(d) for label in labels), f"metadata {labels}")
    text = _body(browser)
    assert PARTITION in text
    assert metadata["target_size"] in text  # the value, as recorded
    _screenshot(browser, "asset-metadata")



def test_quality_report_page_shows_its_pictures(webserver, browser):
    """quality_report's metadata links the HTML report and shows its key pictures inline."""
    url, _ = webserver
    browser.set_window_size(1600, 1400)
    browser.get(_asset_link(url, dg.AssetKey(["flat", "quality_report"])))
    _wait_for(browser, lambda d: all(label in _body(d) for label in ("report_html", "report_link", "pictures")),
              "the report's metadata")

    def pictures(driver) -> int:
        return int(driver.execute_script(
            "return Array.from(document.images)"
            ".filter(i => i.src.startsWith('data:image/png') && i.naturalWidth > 0).length;"))

    if pictures(browser) < 3:  # markdown metadata opens from its row ("Show Markdown")
        from selenium.webdriver.common.by import By

        row = browser.find_element(By.XPATH, "//tr[td[normalize-space(.)='pictures']]")
        row.find_element(By.XPATH, ".//*[normalize-space(text())='[Show Markdown]']").click()
    _wait_for(browser, lambda d: pictures(d) >= 3, "the report's key pictures")
    assert _screenshot(browser, "quality-report-metadata").stat().st_size > 10_000


def test_quality_report_opens_with_sections_and_pictures(webserver, browser):
    """The published report.html of the materialised run, opened from disk: sections and every
    picture shown, nothing loaded from elsewhere, no console error."""
    from selenium.webdriver.common.by import By

    _, metadata = webserver
    report = Path(metadata["_report_html"])
    assert report.is_file()
    browser.set_window_size(1400, 1400)
    browser.get_log("browser")  # start from an empty console
    browser.get(report.resolve().as_uri())
    _wait_for(browser, lambda d: all(h in _body(d) for h in REPORT_SECTIONS), f"report sections {REPORT_SECTIONS}")
    images = browser.find_elements(By.TAG_NAME, "img")
    assert len(images) >= 5
    loaded = browser.execute_script(
        "return Array.from(document.images)"
        ".map(i => i.complete && i.naturalWidth > 0 && i.src.startsWith('data:image/png'));")
    assert all(loaded), f"{loaded.count(False)} of {len(loaded)} pictures did not load"
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(r => r.name);")
    assert resources == []  # nothing fetched: pictures are inline, there is no script or stylesheet link
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    assert "refined" in _body(browser)  # the stage table of the pipeline run
    assert browser.find_element(By.ID, "status").text.splitlines()[0] == "Published"
    assert _screenshot(browser, "report").stat().st_size > 10_000


@pytest.fixture(scope="module")
def refused_report(tmp_path_factory) -> tuple[Path, str]:
    """The flat graph of PARTITION with an accuracy floor no output reaches, in an instance of its own
    (the webserver's keeps its passed checks): the refused run's report and the failed check's reason."""
    from synth_orchestration.assets import flat
    from synth_orchestration.resources import ArtifactStore, MetricStoreResource

    state = tmp_path_factory.mktemp("ui_refused")
    result = dg.materialize(
        flat.ASSETS, partition_key=PARTITION, raise_on_error=False,
        resources={"artifacts": ArtifactStore(artifact_root=str(state / "artifacts")),
                   "metrics": MetricStoreResource(database=str(state / "metrics.duckdb"))},
        run_config=dg.RunConfig({"flat__refined_output": {"config": {"accuracy_floor": 1.0}}}),
    )
    [check] = [e for e in result.get_asset_check_evaluations() if not e.passed]
    return Path(check.metadata["report"].value), f"{check.check_name}: {check.description}"


def test_refused_report_opens_headed_not_published(webserver, browser, refused_report):
    """A refused run's report.html, opened from disk: the verdict and its reason above everything else,
    the rest of the report drawn, nothing fetched, no console error."""
    from selenium.webdriver.common.by import By

    report, reason = refused_report
    assert report.is_file() and "published" not in report.parts
    browser.set_window_size(1400, 1400)
    browser.get_log("browser")
    browser.get(report.resolve().as_uri())
    _wait_for(browser, lambda d: "Not published" in _body(d), "the refused report's verdict")
    status = browser.find_element(By.ID, "status")
    assert status.text.splitlines()[0] == "Not published" and reason in status.text
    headline = browser.find_element(By.ID, "headline")
    assert status.location["y"] < headline.location["y"]  # the reasons come first
    assert all(h in _body(browser) for h in REPORT_SECTIONS)
    loaded = browser.execute_script(
        "return Array.from(document.images).map(i => i.complete && i.naturalWidth > 0);")
    assert len(loaded) >= 5 and all(loaded)
    assert browser.execute_script("return performance.getEntriesByType('resource').length;") == 0
    assert [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")] == []
    assert _screenshot(browser, "report-refused").stat().st_size > 10_000
