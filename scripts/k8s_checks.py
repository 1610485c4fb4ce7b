#!/usr/bin/env python3
"""What a schema cannot see in deploy/k8s: the manifests against each other and against the server.

Run by scripts/k8s-validate.sh after `kubernetes-validate --strict` (in .venv-checks: needs PyYAML).
The ServiceMonitor has no schema in kubernetes-validate (it is a CRD); its fields are checked here
against the Prometheus Operator's monitoring.coreos.com/v1 ServiceMonitor spec for the fields we use.
Prints one line per failed check and exits 1 if any failed.
"""
import glob
import os
import re
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
    return condition


def subset(small, big):
    return all(big.get(k) == v for k, v in (small or {}).items())


def load():
    objects = {}
    for path in sorted(glob.glob(f"{ROOT}/deploy/k8s/*.yaml") + glob.glob(f"{ROOT}/deploy/k8s/monitoring/*.yaml")):
        if path.endswith("prometheus-scrape.yaml"):  # a prometheus.yml, checked by promtool
            continue
        for doc in yaml.safe_load_all(open(path)):
            if doc:
                objects[doc["kind"]] = doc
    return objects


# Go durations as the Prometheus Operator's CRD accepts them (its `Duration` pattern).
DURATION = re.compile(r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$")


def seconds(duration):
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"([0-9]+)(ms|s|m|h)", duration))


def main():
    o = load()
    for kind in ["Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceMonitor", "ConfigMap"]:
        check(kind in o, f"no {kind} in deploy/k8s")
    if failures:
        return report()
    dep, svc, hpa, pdb, sm, adapter = (o[k] for k in ["Deployment", "Service", "HorizontalPodAutoscaler",
                                                       "PodDisruptionBudget", "ServiceMonitor", "ConfigMap"])
    serve_source = "".join(open(p).read() for p in glob.glob(f"{ROOT}/Sources/bootmae-serve/*.swift"))
    service_source = "".join(open(p).read() for p in glob.glob(f"{ROOT}/Sources/Service/*.swift"))

    pod = dep["spec"]["template"]
    pod_labels = pod["metadata"]["labels"]
    (container,) = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    env = {e["name"]: e for e in container.get("env", [])}

    # Selectors: every selector must pick the Deployment's pods.
    check(subset(dep["spec"]["selector"]["matchLabels"], pod_labels), "Deployment selector does not match its pod labels")
    check(subset(svc["spec"]["selector"], pod_labels), "Service selector does not match the pod labels")
    check(subset(pdb["spec"]["selector"]["matchLabels"], pod_labels), "PodDisruptionBudget selector does not match the pod labels")
    for c in pod["spec"].get("topologySpreadConstraints", []):
        check(subset(c["labelSelector"]["matchLabels"], pod_labels), "topologySpreadConstraint selector does not match the pod labels")

    # Ports: the Service's target port and every probe's port are container ports; the container port is BOOTMAE_PORT.
    for p in svc["spec"]["ports"]:
        check(p["targetPort"] in ports or p["targetPort"] in ports.values(), f"Service targetPort {p['targetPort']} is no container port")
    check(str(ports.get("http")) == env.get("BOOTMAE_PORT", {}).get("value"), "containerPort http differs from BOOTMAE_PORT")
    check(env.get("BOOTMAE_HOST", {}).get("value") == "0.0.0.0", "BOOTMAE_HOST must be 0.0.0.0 in a pod (the default is loopback)")

    # Probes: real routes of the server, on a container port.
    for name, path in [("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")]:
        probe = container.get(name)
        if check(probe is not None, f"no {name}"):
            get = probe["httpGet"]
            check(get["path"] == path, f"{name} should GET {path}, not {get['path']}")
            check(get["port"] in ports, f"{name} port {get['port']} is no container port")
            check(f'"{get["path"]}"' in service_source, f"{name} path {get['path']} is no route of the Service")

    # Environment: every BOOTMAE_* variable is a real flag twin; threads follow the CPU limit.
    for name in env:
        if name.startswith("BOOTMAE_"):
            check(f'"{name}"' in serve_source, f"{name} is not read by bootmae-serve (typo?)")
    threads = env.get("BOOTMAE_THREADS", {}).get("valueFrom", {}).get("resourceFieldRef", {})
    check(threads.get("resource") == "limits.cpu" and threads.get("containerName") == container["name"]
          and str(threads.get("divisor")) == "1", "BOOTMAE_THREADS should come from this container's limits.cpu (divisor 1)")
    res = container["resources"]
    check(res["requests"] == res["limits"], "requests and limits differ (the pod would not be Guaranteed QoS)")
    check(re.fullmatch(r"[0-9]+", str(res["limits"]["cpu"])) is not None,
          "the CPU limit is not a whole number of cores (BOOTMAE_THREADS rounds it up)")

    # Shutdown: the kubelet's SIGKILL deadline comes after the preStop sleep and the drain.
    pre_stop = container.get("lifecycle", {}).get("preStop", {})
    sleep = float(pre_stop["exec"]["command"][-1]) if "exec" in pre_stop else float(pre_stop.get("sleep", {}).get("seconds", 0))
    drain = float(env.get("BOOTMAE_DRAIN_TIMEOUT", {}).get("value", 20))
    grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
    check(grace > sleep + drain, f"terminationGracePeriodSeconds {grace} is not above preStop {sleep} s + drain {drain} s")

    # HPA: targets the Deployment; the custom metric is the adapter rule's and the server's.
    ref = hpa["spec"]["scaleTargetRef"]
    check(ref["kind"] == "Deployment" and ref["name"] == dep["metadata"]["name"], "HPA does not target the Deployment")
    check(pdb["spec"].get("maxUnavailable", 0) < hpa["spec"]["minReplicas"], "the PDB could allow every replica down at once")
    pods_metrics = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    check(any(m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in hpa["spec"]["metrics"]), "HPA has no CPU metric")
    rules = yaml.safe_load(adapter["data"]["config.yaml"])["rules"]
    exposed = {r["name"].get("as") for r in rules}
    for m in pods_metrics:
        check(m in exposed, f"HPA pods metric {m} is not exposed by the adapter rule")
        check(f'"{m}"' in service_source, f"HPA pods metric {m} is not a metric of the server")
    for r in rules:
        series = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)", r["seriesQuery"])
        check(series is not None and re.fullmatch(r["name"]["matches"], series.group(1)) is not None,
              "the adapter rule's name.matches does not match its seriesQuery metric")
        check(set(r["resources"]["overrides"]) == {"namespace", "pod"}, "the adapter rule should map namespace and pod")
        for field in ["<<.Series>>", "<<.LabelMatchers>>", "<<.GroupBy>>"]:
            check(field in r["metricsQuery"], f"the adapter metricsQuery lacks {field}")

    # ServiceMonitor (no schema available offline): the spec fields used, then its fit with the Service.
    check(sm["apiVersion"] == "monitoring.coreos.com/v1", "ServiceMonitor apiVersion is not monitoring.coreos.com/v1")
    check(set(sm["spec"]) <= {"selector", "endpoints", "namespaceSelector", "jobLabel", "podTargetLabels", "targetLabels",
                               "sampleLimit"}, f"unexpected ServiceMonitor spec fields {set(sm['spec'])}")
    check(subset(sm["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"]), "ServiceMonitor selector does not match the Service labels")
    svc_ports = {p["name"] for p in svc["spec"]["ports"]}
    for e in sm["spec"]["endpoints"]:
        check(set(e) <= {"port", "path", "interval", "scrapeTimeout", "scheme", "honorLabels", "relabelings",
                         "metricRelabelings"}, f"unexpected ServiceMonitor endpoint fields {set(e)}")
        check(e["port"] in svc_ports, f"ServiceMonitor port {e['port']} is no Service port name")
        check(e.get("path", "/metrics") == "/metrics" and '"/metrics"' in service_source, "ServiceMonitor path is not /metrics")
        for d in ["interval", "scrapeTimeout"]:
            check(d not in e or DURATION.match(e[d]) is not None, f"ServiceMonitor {d} {e.get(d)} is no duration")
        check(seconds(e.get("scrapeTimeout", "10s")) <= seconds(e.get("interval", "30s")), "scrapeTimeout above the interval")
    return report()


def report():
    for f in failures:
        print(f"k8s-checks: FAIL: {f}")
    if not failures:
        print("k8s-checks: selectors, ports, probes, env twins, QoS, grace period, HPA/adapter/metric names, ServiceMonitor: OK")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
