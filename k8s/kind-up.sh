#!/usr/bin/env bash
# Runs ticketing on a local kind cluster: creates the cluster (once) with the host's ports 80/443
# mapped to its ingress controller, builds the image and loads it into the node, applies
# k8s/overlays/kind and waits until every service is ready. Safe to run again: it reuses the
# cluster, rebuilds the image and rolls the services onto it.
#
#   k8s/kind-up.sh                       # http://localhost/
#   HTTP_PORT=8080 k8s/kind-up.sh        # when port 80 is taken (read at cluster creation)
#   CLUSTER=other k8s/kind-up.sh
#
# Needs docker, kind (0.24 or later enforces NetworkPolicies), kubectl and curl.
set -euo pipefail
# shellcheck source=k8s/deploy-lib.sh
. "$(dirname "$0")/deploy-lib.sh"

cluster=${CLUSTER:-ticketing}
http_port=${HTTP_PORT:-80}
https_port=${HTTPS_PORT:-443}
context=kind-$cluster
# Pinned, so every developer runs the same controller.
ingress_manifest=https://raw.githubusercontent.com/kubernetes/ingress-nginx/controller-v1.13.2/deploy/static/provider/kind/deploy.yaml
metrics_manifest=https://github.com/kubernetes-sigs/metrics-server/releases/download/v0.7.2/components.yaml

need docker "https://docs.docker.com/get-docker/"
need kind "https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
need kubectl "https://kubernetes.io/docs/tasks/tools/"
need curl "your system's package manager"
docker info >/dev/null 2>&1 || die "docker is installed but its daemon does not answer: start Docker first"

if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
  say "kind cluster $cluster exists; reusing it"
else
  say "creating kind cluster $cluster (ingress on host ports $http_port and $https_port)"
  # ingress-ready=true is where kind's ingress-nginx manifest schedules the controller; the
  # port mappings carry the host's traffic to it, on loopback only: the cluster's secrets are
  # development values that the rest of the network should not reach.
  kind create cluster --name "$cluster" --wait 120s --config=- <<YAML
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
    labels:
      ingress-ready: "true"
    extraPortMappings:
      - containerPort: 80
        hostPort: $http_port
        listenAddress: 127.0.0.1
        protocol: TCP
      - containerPort: 443
        hostPort: $https_port
        listenAddress: 127.0.0.1
        protocol: TCP
YAML
fi

say "installing ingress-nginx"
kubectl --context "$context" apply --filename "$ingress_manifest"
# rollout status, not `wait pod`: right after the apply there may be no pod yet to wait for.
kubectl --context "$context" rollout status --namespace ingress-nginx deployment/ingress-nginx-controller --timeout=300s

# The HPAs of the hot services read CPU from metrics-server. kind's kubelets serve self-signed
# certificates, hence --kubelet-insecure-tls (acceptable on a laptop cluster). Installed once:
# re-applying the manifest would drop the flag again.
if ! kubectl --context "$context" get deployment metrics-server --namespace kube-system >/dev/null 2>&1; then
  say "installing metrics-server (for the HorizontalPodAutoscalers)"
  kubectl --context "$context" apply --filename "$metrics_manifest"
  kubectl --context "$context" patch deployment metrics-server --namespace kube-system --type=json \
    --patch '[{"op": "add", "path": "/spec/template/spec/containers/0/args/-", "value": "--kubelet-insecure-tls"}]'
fi

build_image
say "loading $image into kind cluster $cluster"
kind load docker-image "$image" --name "$cluster"

deploy "$context" k8s/overlays/kind

if [ "$http_port" = 80 ]; then url=http://localhost; else url=http://localhost:$http_port; fi
wait_for_url "$url"
set_public_url "$context" "$url"
print_next_steps "$context" "$url"
