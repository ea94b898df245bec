"""Installs charts/keyfront with Helm's own code (helm-sdkpy) into the cluster KUBECONFIG
points at, with the values given as JSON. Lints first. Prints Helm's messages; exits non-zero on
any lint error or install failure. Run it with HELM_DRIVER=memory in its environment (Helm's Go
code reads it when the library loads) so release records stay in memory and a cluster that
takes JSON only (the kube API double) accepts the install.

Each further VALUES_JSON is a `helm upgrade` of the release with those values, in order (the
release record lives in this process's memory, so upgrades run here too).

With KEYFRONT_RENDERED_OUT set, the install's rendered manifests (the release's and its
hooks') are written to that file, for `kubectl apply --dry-run=server` elsewhere.

usage: HELM_DRIVER=memory helm_install.py KUBECONFIG NAMESPACE RELEASE VALUES_JSON [VALUES_JSON...]"""

import asyncio
import json
import os
import sys

import helm_sdkpy

CHART = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "charts", "keyfront")


async def main(kubeconfig, namespace, release, values, upgrades):
    config = helm_sdkpy.Configuration(namespace=namespace, kubeconfig=kubeconfig)
    lint = await helm_sdkpy.Lint(config).run(CHART)
    print("lint:", json.dumps(lint))
    if lint.get("Errors"):
        sys.exit("helm lint reported errors")
    result = await helm_sdkpy.Install(config).run(release, CHART, values=values, wait=False, timeout=60)
    print("install:", result.get("info", {}).get("status", result))
    rendered_out = os.environ.get("KEYFRONT_RENDERED_OUT")
    if rendered_out:
        documents = [result.get("manifest", "")] + [h.get("manifest", "") for h in result.get("hooks") or []]
        if not documents[0].strip():
            sys.exit("the install result carries no rendered manifest")
        with open(rendered_out, "w") as out:
            out.write("\n---\n".join(documents))
    for upgrade in upgrades:
        result = await helm_sdkpy.Upgrade(config).run(release, CHART, values=upgrade, wait=False, timeout=60)
        print("upgrade:", result.get("info", {}).get("status", result))


if __name__ == "__main__":
    kubeconfig, namespace, release, values = sys.argv[1:5]
    upgrades = [json.loads(v) for v in sys.argv[5:]]
    asyncio.run(main(kubeconfig, namespace, release, json.loads(values), upgrades))
