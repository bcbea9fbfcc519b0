"""deploy/k8s: every overlay renders and validates offline, says what it claims to, and a broken
copy fails — so the validation in CI (deploy/k8s/validate.sh) is known to bite."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

K8S_DIR = Path(__file__).resolve().parents[2] / "deploy" / "k8s"


def load_validate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("k8s_validate", K8S_DIR / "validate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


validate = load_validate()


def rendered(overlay: str, k8s_dir: Path = K8S_DIR) -> dict[str, dict]:
    return {validate.name_of(r): r for r in validate.render(k8s_dir / "overlays" / overlay)}


def attnserve_container(resources: dict[str, dict]) -> dict:
    (container,) = resources["Deployment/attnserve"]["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize("overlay", validate.OVERLAYS)
def test_overlay_renders_and_validates(overlay: str) -> None:
    assert validate.validate_overlay(overlay) == []


def test_prometheus_adapter_config_validates() -> None:
    assert validate.validate_standalone() == []
    assert validate.adapter_metrics(K8S_DIR) == {
        "attnserve_inflight_requests",
        "attnserve_queue_depth",
    }


def test_cpu_overlay_drains_before_sigterm_and_scales_on_cpu() -> None:
    resources = rendered("cpu")
    pod = resources["Deployment/attnserve"]["spec"]["template"]
    container = attnserve_container(resources)
    assert container["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
    assert container["image"] == "attnserve:latest"
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    env = validate.container_env(container)
    assert env["ATTNSERVE_HOST"] == "0.0.0.0" and env["ATTNSERVE_DEVICE"] == "cpu"
    (metric,) = resources["HorizontalPodAutoscaler/attnserve"]["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert "ServiceMonitor/attnserve" not in resources


def test_gpu_overlay_requests_a_gpu_with_the_cuda_image() -> None:
    container = attnserve_container(rendered("gpu"))
    assert container["image"] == "attnserve:cuda"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert validate.container_env(container)["ATTNSERVE_DEVICE"] == "cuda"


def test_custom_metrics_overlay_scales_on_attnserve_metrics() -> None:
    hpa = rendered("custom-metrics")["HorizontalPodAutoscaler/attnserve"]
    names = {m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"}
    assert names == {"attnserve_inflight_requests", "attnserve_queue_depth"}


def test_servicemonitor_overlay_replaces_annotation_scraping() -> None:
    resources = rendered("servicemonitor")
    pod = resources["Deployment/attnserve"]["spec"]["template"]
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "false"
    (endpoint,) = resources["ServiceMonitor/attnserve"]["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics")


def test_models_volume_overlay_mounts_the_claim_read_only_over_models() -> None:
    resources = rendered("models-volume")
    mounts = {m["mountPath"]: m for m in attnserve_container(resources)["volumeMounts"]}
    assert mounts["/models"]["readOnly"] is True
    assert "PersistentVolumeClaim/attnserve-models" in resources


BREAKAGES = {
    "misspelt field": ("cpu", "base/deployment.yaml", "failureThreshold: 60",
                       "failureTreshold: 60", "'failureTreshold' was unexpected"),
    "wrong type": ("cpu", "base/hpa.yaml", "minReplicas: 2", "minReplicas: two",
                   "minReplicas: 'two' is not of type 'integer'"),
    "grace shorter than drain": ("gpu", "base/deployment.yaml", "terminationGracePeriodSeconds: 50",
                                 "terminationGracePeriodSeconds: 35", "must exceed preStop"),
    "selector off the pods": ("cpu", "base/pdb.yaml", "app.kubernetes.io/name: attnserve",
                              "app.kubernetes.io/component: server", "does not match pods"),
    "missing resource file": ("cpu", "base/kustomization.yaml", "- hpa.yaml", "- hap.yaml",
                              "kustomize could not render"),
    "misspelt CRD field": ("servicemonitor", "components/servicemonitor/servicemonitor.yaml",
                           "interval: 15s", "intervall: 15s", "'intervall' was unexpected"),
    "metric no rule provides": ("custom-metrics", str(validate.ADAPTER_CONFIG),
                                "as: attnserve_queue_depth", "as: attnserve_queue_dept",
                                "uses attnserve_queue_depth, which no adapter rule provides"),
    "gRPC port not exposed": ("cpu", "base/deployment.yaml", "containerPort: 8001",
                              "containerPort: 8101", "GRPC_PORT 8001 is not a containerPort"),
    "unknown kind": ("models-volume", "overlays/models-volume/models-pvc.yaml",
                     "kind: PersistentVolumeClaim", "kind: PersistentVolumeClame",
                     "Couldn't find schema for kind PersistentVolumeClame"),
}  # fmt: skip


@pytest.mark.parametrize("case", BREAKAGES.values(), ids=BREAKAGES.keys())
def test_broken_copy_fails_validation(case: tuple[str, str, str, str, str], tmp_path: Path) -> None:
    overlay, file, old, new, expected = case
    copy = tmp_path / "k8s"
    shutil.copytree(K8S_DIR, copy)
    target = copy / file
    text = target.read_text()
    assert old in text, f"{file} no longer contains {old!r}: update this case"
    target.write_text(text.replace(old, new, 1))
    problems = validate.validate_overlay(overlay, copy)
    assert any(expected in problem for problem in problems), problems


def test_validate_script_exit_code(tmp_path: Path) -> None:
    """The command CI runs: 0 on the real tree, 1 with the broken part named."""
    script = K8S_DIR / "validate.sh"
    environment = {"PATH": "/usr/bin:/bin", "PYTHON": sys.executable}
    good = subprocess.run([script], capture_output=True, text=True, env=environment, check=False)
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.count("ok ") == len(validate.OVERLAYS) + 1

    copy = tmp_path / "k8s"
    shutil.copytree(K8S_DIR, copy)
    service = copy / "base" / "service.yaml"
    service.write_text(service.read_text().replace("targetPort: http", "targetPorts: http"))
    bad = subprocess.run(
        [script, str(copy)], capture_output=True, text=True, env=environment, check=False
    )
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "FAIL   overlays/cpu" in bad.stdout and "'targetPorts' was unexpected" in bad.stdout
