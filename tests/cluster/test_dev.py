"""`certsmith dev` as a user runs it: a failing certificate and a crashed operator never take the
cluster down."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from kubernetes import client

from certsmith.api import GROUP, VERSION
from certsmith.kube.client import api_client_from_kubeconfig
from certsmith_devtools.kit import condition, free_port
from tests.cluster.support import eventually
from tests.conftest import REPO

DEMO_TIMEOUT = 12


class _Output:
    """The lines a process prints, read by a thread so that waiting for one can time out."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        assert process.stdout is not None
        stdout = process.stdout
        threading.Thread(target=self._read, args=(stdout,), daemon=True).start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float = 120.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(
                    f"no line with {text!r} within {timeout:.0f}s; output:\n{''.join(self.lines)[-4000:]}"
                )
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                pytest.fail(
                    f"the process ended before printing {text!r}; output:\n{''.join(self.lines)[-4000:]}"
                )
            self.lines.append(line)
            if text in line:
                return line


def _certsmith_dev(kubeconfig: Path, *arguments: str) -> subprocess.Popen[str]:
    """`certsmith dev` from the checkout, writing its kubeconfig to `kubeconfig`, its output piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "certsmith.cli", "dev", "--kubeconfig-out", str(kubeconfig), *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO / "operator")},
    )


def _certificate(name: str, issuer: dict[str, str]) -> dict[str, object]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Certificate",
        "metadata": {"name": name},
        "spec": {"secretName": name, "dnsNames": [f"{name}.example.com"], "issuerRef": issuer},
    }


def _prometheus_answers(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 -- loopback
        return bool(json.load(response)["data"]["result"])


def _operator_pid(parent: int) -> int:
    found = subprocess.run(
        ["pgrep", "-P", str(parent), "-f", "certsmith.cli run"], capture_output=True, text=True, check=False
    )
    pids = [int(pid) for pid in found.stdout.split()]
    assert len(pids) == 1, f"expected one operator process under {parent}, found {pids}"
    return pids[0]


def test_certsmith_dev_keeps_the_cluster_through_a_failing_certificate_and_an_operator_crash_and_does_acme(
    tmp_path: Path,
) -> None:
    kubeconfig = tmp_path / "dev.kubeconfig"
    metrics_port = free_port()
    dev = _certsmith_dev(
        kubeconfig,
        "--demo-timeout",
        str(DEMO_TIMEOUT),
        "--metrics-port",
        str(metrics_port),
        "--monitoring",
        "--acme",
    )
    output = _Output(dev)
    try:
        output.wait_for("created ClusterIssuer pebble")
        output.wait_for("applied the demo")
        applied = time.monotonic()
        objects = client.CustomObjectsApi(api_client_from_kubeconfig(kubeconfig))
        objects.create_namespaced_custom_object(
            GROUP, VERSION, "demo", "certificates", _certificate("orphan", {"name": "no-such-issuer"})
        )
        output.wait_for("certsmith status -A")
        output.wait_for(f"Metrics: http://127.0.0.1:{metrics_port}/metrics")
        prometheus_url = output.wait_for("Prometheus: http://127.0.0.1:").split()[1]
        output.wait_for("Press Ctrl-C to stop.")
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
            metrics = response.read().decode()
        assert 'certsmith_certificate_ready_status{condition="True",issuer_kind="Issuer",' in metrics
        query = urllib.parse.urlencode(
            {"query": 'count(certsmith_certificate_ready_status{namespace="demo"})'}
        )
        eventually(
            lambda: _prometheus_answers(f"{prometheus_url}/api/v1/query?{query}"),
            30,
            "Prometheus to have scraped the demo",
        )
        time.sleep(max(0.0, applied + DEMO_TIMEOUT + 3 - time.monotonic()))
        orphan = objects.get_namespaced_custom_object(GROUP, VERSION, "demo", "certificates", "orphan")
        assert isinstance(orphan, dict)
        assert condition(orphan)["reason"] == "IssuerNotFound", orphan.get("status")
        assert not [line for line in output.lines if "not Ready after" in line and "orphan" in line]

        os.kill(_operator_pid(dev.pid), signal.SIGKILL)
        output.wait_for("the operator exited with code -9")
        output.wait_for("restarting the operator", timeout=30)
        objects.create_namespaced_custom_object(
            GROUP,
            VERSION,
            "demo",
            "certificates",
            _certificate("after-crash", {"name": "intermediate-ca", "kind": "Issuer"}),
        )
        objects.create_namespaced_custom_object(
            GROUP,
            VERSION,
            "demo",
            "certificates",
            _certificate("acme", {"name": "pebble", "kind": "ClusterIssuer"}),
        )
        for name in ("after-crash", "acme"):
            deadline = time.monotonic() + 60
            while True:
                body = objects.get_namespaced_custom_object(GROUP, VERSION, "demo", "certificates", name)
                assert isinstance(body, dict)
                if condition(body).get("status") == "True":
                    break
                assert time.monotonic() < deadline, (
                    f"{name} not Ready after the restart: {body.get('status')}; "
                    f"certsmith dev said: {''.join(output.lines[-40:])}"
                )
                time.sleep(0.5)

        dev.send_signal(signal.SIGINT)
        dev.wait(timeout=60)
        assert dev.returncode == 0, "".join(output.lines)[-3000:]
        assert not kubeconfig.exists()
    finally:
        if dev.poll() is None:  # a failed assertion must not leave it running; its children die with it
            dev.kill()
            dev.wait()


def test_certsmith_dev_acme_without_demo_is_ready_and_installs_what_deploy_installs(tmp_path: Path) -> None:
    """The pebble ClusterIssuer's account key goes to namespace certsmith, which only the demo used to
    create: dev now installs deploy/install.yaml first (the namespace with it), as users do, so users'
    own `kubectl apply --server-side` of it meets no other field manager."""
    kubeconfig = tmp_path / "dev.kubeconfig"
    dev = _certsmith_dev(kubeconfig, "--metrics-port", "0", "--acme", "--no-demo")
    output = _Output(dev)
    try:
        output.wait_for("created ClusterIssuer pebble")
        created = time.monotonic()
        objects = client.CustomObjectsApi(api_client_from_kubeconfig(kubeconfig))

        def issuer_ready() -> bool | None:
            body = objects.get_cluster_custom_object(GROUP, VERSION, "clusterissuers", "pebble")
            assert isinstance(body, dict)
            return condition(body).get("status") == "True" or None

        eventually(issuer_ready, 90, "ClusterIssuer pebble Ready")
        print(f"ClusterIssuer pebble Ready {time.monotonic() - created:.1f}s after it was created")
        kubectl = output.wait_for("alias kubectl=").split("=", 1)[1].split()[0]
        applied = subprocess.run(
            [
                kubectl,
                "--kubeconfig",
                str(kubeconfig),
                "apply",
                "--server-side",
                "-f",
                str(REPO / "deploy" / "install.yaml"),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert applied.returncode == 0, applied.stderr
        assert "conflict" not in applied.stderr.lower(), applied.stderr
        dev.send_signal(signal.SIGINT)
        dev.wait(timeout=60)
        assert dev.returncode == 0, "".join(output.lines)[-3000:]
    finally:
        if dev.poll() is None:
            dev.kill()
            dev.wait()
