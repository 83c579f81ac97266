#!/usr/bin/env bash
# Runs ticketing on a local minikube cluster: starts the profile (once) with Calico, so the
# NetworkPolicies are enforced, and the ingress and metrics-server addons; builds the image and
# loads it into the node, applies k8s/overlays/minikube and waits until every service is ready.
# Safe to run again: it reuses the profile, rebuilds the image and rolls the services onto it.
#
#   k8s/minikube-up.sh                   # prints the URL (http://<minikube ip>/)
#   PROFILE=other k8s/minikube-up.sh
#
# Needs docker, minikube, kubectl and curl. With the Docker driver on macOS or Windows the node's
# address is not reachable from the host: run `minikube tunnel -p ticketing` in another terminal
# and use http://127.0.0.1/ (the script says so when it cannot reach the node).
set -euo pipefail
# shellcheck source=k8s/deploy-lib.sh
. "$(dirname "$0")/deploy-lib.sh"

profile=${PROFILE:-ticketing}
context=$profile

need docker "https://docs.docker.com/get-docker/"
need minikube "https://minikube.sigs.k8s.io/docs/start/"
need kubectl "https://kubernetes.io/docs/tasks/tools/"
need curl "your system's package manager"

if [ "$(minikube status --profile "$profile" --format '{{.Host}}' 2>/dev/null || true)" = Running ]; then
  say "minikube profile $profile is running; reusing it"
else
  say "starting minikube profile $profile"
  # Calico enforces NetworkPolicies; minikube's default network plugin ignores them. 4 CPUs and
  # 6 GB leave room for two replicas of each hot service next to Postgres and NATS.
  minikube start --profile "$profile" --cni=calico --cpus=4 --memory=6g
fi
say "enabling the ingress and metrics-server addons"
minikube addons enable ingress --profile "$profile"
minikube addons enable metrics-server --profile "$profile"
kubectl --context "$context" rollout status --namespace ingress-nginx deployment/ingress-nginx-controller --timeout=300s

build_image
say "loading $image into minikube profile $profile"
minikube image load "$image" --profile "$profile"

deploy "$context" k8s/overlays/minikube

url=http://$(minikube ip --profile "$profile")
if ! curl --silent --max-time 3 --output /dev/null "$url/"; then
  say "$url is not reachable from this host (Docker driver on macOS or Windows?)"
  say "run 'minikube tunnel -p $profile' in another terminal; then use http://127.0.0.1"
  url=http://127.0.0.1
fi
wait_for_url "$url"
set_public_url "$context" "$url"
print_next_steps "$context" "$url"
